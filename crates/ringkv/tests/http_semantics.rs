//! The HTTP API follows HTTP and says what it did: a delete without a
//! context takes the `r` of the read it makes (case B18), and `Accept`
//! is weighed by its q-values and exact media types (case B19, RFC 9110).

mod common;

use common::Cluster;
use reqwest::Method;

/// B18: with one replica of three up, `PUT ?w=1` works, so must a
/// context-less `DELETE` given `?r=1&w=1`; without `r` its 503 names the
/// read that lacked replicas, not the write whose `w=1` was met.
#[tokio::test]
async fn a_delete_without_a_context_takes_r_and_names_the_step_that_lacked_replicas() {
    let mut c = Cluster::start(3).await;
    c.put_with(1, "k", "v", None, Some(3)).await.expect(204);
    c.kill(2);
    c.kill(3);
    c.put_with(1, "k", "v2", None, Some(1)).await.expect(204);

    let refused = c.delete_with(1, "k", None, Some(1)).await.expect(503);
    let said = refused.text();
    assert!(
        said.starts_with("the read before the delete needed 2 of 3 replicas but only 1 answered")
            && said.contains("lower its r"),
        "{said:?}"
    );
    // The write step's own sentence names the delete.
    let short = c
        .request(Method::DELETE, 1, "/kv/k?r=1&w=2", &[], None)
        .await;
    let said = short.expect(503).text();
    assert!(
        said.starts_with("delete needed 2 of 3 replicas"),
        "{said:?}"
    );
    // A conditional write's read takes r too, and says it is that read.
    let create = [("if-none-match", "*")];
    let body = Some(b"new".to_vec());
    let refused = c
        .request(Method::PUT, 1, "/kv/fresh?w=1", &create, body.clone())
        .await;
    let said = refused.expect(503).text();
    assert!(
        said.starts_with("the read that checks If-Match/If-None-Match needed 2"),
        "{said}"
    );
    c.request(Method::PUT, 1, "/kv/fresh?r=1&w=1", &create, body)
        .await
        .expect(204);
    c.request(Method::DELETE, 1, "/kv/k?r=1&w=1", &[], None)
        .await
        .expect(204);
    c.request(Method::GET, 1, "/kv/k?r=1", &[], None)
        .await
        .expect(404);

    let bad = c.request(Method::DELETE, 1, "/kv/k?r=0", &[], None).await;
    assert_eq!(
        bad.expect(400).text().trim(),
        "r must be within 1..=3, got 0"
    );
    let bad = c
        .request(Method::DELETE, 1, "/kv/k?r=1&pr=2", &[], None)
        .await;
    assert_eq!(
        bad.expect(400).text().trim(),
        "pr must not exceed r (1), got 2"
    );
}

/// B19: only a header that weighs `application/json` above everything
/// else gets the JSON form; `q=0` refuses it, look-alike types are other
/// types, and a header that accepts neither form gets `406`.
#[tokio::test]
async fn accept_q_values_and_exact_media_types_choose_raw_bytes_or_json() {
    let c = Cluster::start(3).await;
    c.put(1, "greeting", "hello").await.expect(204);
    let read = async |accept: &str| {
        let headers = [("accept", accept)];
        c.request(Method::GET, 1, "/kv/greeting", &headers, None)
            .await
    };
    for raw in [
        "application/json;q=0, */*",
        "text/plain, application/json;q=0.1",
        "application/jsonx",
        "application/octet-stream",
        "*/*",
    ] {
        assert_eq!(read(raw).await.expect(200).text(), "hello", "Accept: {raw}");
    }
    for json in ["application/json", "text/plain;q=0.5, application/json"] {
        let body = read(json).await.expect(200).text();
        assert!(body.contains("\"siblings\""), "Accept: {json}: {body}");
    }
    let neither = read("application/json;q=0").await.expect(406).text();
    assert!(
        neither.contains("the Accept header takes neither"),
        "{neither}"
    );
}

/// A read's `ETag` is its context: `If-Match` with it writes only while
/// the key is unchanged, `If-None-Match: *` creates only, and a read
/// with `If-None-Match` of the current tag is `304`.
#[tokio::test]
async fn entity_tags_make_writes_conditional_and_reads_not_modified() {
    let c = Cluster::start(3).await;
    c.put(1, "cart", "apple").await.expect(204);
    let read = c.get(2, "cart").await.expect(200);
    let tag = read.header("etag").expect("a read has an ETag");
    assert_eq!(read.header("vary").as_deref(), Some("accept"));

    let unchanged = [("if-none-match", tag.as_str())];
    let cached = c
        .request(Method::GET, 3, "/kv/cart", &unchanged, None)
        .await;
    assert!(cached.expect(304).body.is_empty());

    let if_match = [("if-match", tag.as_str())];
    let body = Some(b"apple,pear".to_vec());
    c.request(Method::PUT, 1, "/kv/cart", &if_match, body.clone())
        .await
        .expect(204);
    // The tag is now stale: a second writer that read before is refused,
    // and nothing changed.
    let stale = c.request(Method::PUT, 2, "/kv/cart", &if_match, body).await;
    assert!(stale.expect(412).text().contains("the key changed"));
    assert_eq!(c.get(3, "cart").await.expect(200).text(), "apple,pear");
    let stale = c
        .request(Method::GET, 3, "/kv/cart", &unchanged, None)
        .await;
    assert_eq!(stale.expect(200).text(), "apple,pear");

    let create = [("if-none-match", "*")];
    let exists = c
        .request(Method::PUT, 1, "/kv/cart", &create, Some(b"x".to_vec()))
        .await;
    assert!(exists.expect(412).text().contains("the key exists"));
    c.request(Method::PUT, 1, "/kv/new", &create, Some(b"y".to_vec()))
        .await
        .expect(204);
    // A delete leaves a tombstone: create-only works over it.
    c.delete(1, "new").await.expect(204);
    c.request(Method::PUT, 2, "/kv/new", &create, Some(b"z".to_vec()))
        .await
        .expect(204);
    assert_eq!(c.get(3, "new").await.expect(200).text(), "z");

    let current = c.get(1, "cart").await.expect(200).header("etag").unwrap();
    let stale_delete = c
        .request(Method::DELETE, 1, "/kv/cart", &if_match, None)
        .await;
    stale_delete.expect(412);
    let delete = [("if-match", current.as_str())];
    c.request(Method::DELETE, 1, "/kv/cart", &delete, None)
        .await
        .expect(204);
    c.get(2, "cart").await.expect(404);
    // Tags are opaque: one that does not parse matches nothing (RFC 9110
    // §13.1.1), a weak one never matches If-Match (strong comparison).
    c.put(1, "cart", "again").await.expect(204);
    let current = c.get(1, "cart").await.expect(200).header("etag").unwrap();
    for tag in ["not-quoted".to_string(), format!("W/{current}")] {
        let garbage = [("if-match", tag.as_str())];
        let refused = c.request(Method::PUT, 1, "/kv/cart", &garbage, None).await;
        refused.expect(412);
    }
    let listed = format!("\"zzz\", {current}");
    let list = [("if-match", listed.as_str())];
    c.request(Method::PUT, 1, "/kv/cart", &list, Some(b"listed".to_vec()))
        .await
        .expect(204);
}

/// The raw and JSON forms are two representations with two tags: a 304
/// answers only the tag of the form asked for, and carries that form's
/// tag and `Vary`; `If-Match` on a read that names other versions is 412.
#[tokio::test]
async fn a_read_revalidates_only_with_the_tag_of_its_own_form() {
    let c = Cluster::start(3).await;
    c.put(1, "a", "x").await.expect(204);
    let raw = c.get(1, "a").await.expect(200).header("etag").unwrap();
    let json_read = c.get_with(1, "a", None, true).await.expect(200);
    let json = json_read.header("etag").unwrap();
    assert_ne!(raw, json);
    let ask = async |tag: &str, accept: &str| {
        let headers = [("if-none-match", tag), ("accept", accept)];
        c.request(Method::GET, 2, "/kv/a", &headers, None).await
    };
    let cached = ask(&raw, "*/*").await.expect(304);
    assert_eq!(cached.header("etag").as_deref(), Some(raw.as_str()));
    assert_eq!(cached.header("vary").as_deref(), Some("accept"));
    ask(&raw, "application/json").await.expect(200);
    ask(&json, "*/*").await.expect(200);
    let cached = ask(&json, "application/json").await.expect(304);
    assert_eq!(cached.header("etag").as_deref(), Some(json.as_str()));
    let other = [("if-match", "\"AgECbjKooteNozQBAQE\"")];
    c.request(Method::GET, 2, "/kv/a", &other, None)
        .await
        .expect(412);
    let empty = c
        .request(Method::PUT, 1, "/kv/", &[], Some(b"v".to_vec()))
        .await;
    assert_eq!(
        empty.expect(400).text().trim(),
        "key must be 1 to 1024 bytes, got 0"
    );
    let patch = c.request(Method::PATCH, 1, "/kv/a", &[], None).await;
    assert!(patch.header("allow").is_some(), "{patch:?}");
    assert_eq!(
        patch.expect(405).text().trim(),
        "PATCH is not served at /kv/a"
    );
}
