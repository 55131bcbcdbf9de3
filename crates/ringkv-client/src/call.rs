//! One operation on the wire: the HTTP request for each attempt, which
//! failures may be retried on another node, and decoding the answer.

use crate::bucket::{Bucket, BucketList};
use crate::error::Error;
use crate::http::Http;
use crate::versions::{Context, Versions};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use ringkv_core::keyspace::lww_key;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

pub(crate) const CONTEXT_HEADER: &str = "x-ringkv-context";
pub(crate) const RING_HEADER: &str = "x-ringkv-ring";

/// An operation on one key.
pub(crate) enum Op<'a> {
    /// `bucket`: a key of that bucket; `None`, a `/kv` key.
    Get {
        r: Option<usize>,
        bucket: Option<&'a Bucket>,
    },
    Put {
        bucket: Option<&'a Bucket>,
        w: Option<usize>,
        value: &'a [u8],
        context: &'a Context,
        /// Seconds the value lives (`X-Ringkv-TTL`).
        ttl: Option<u64>,
    },
    /// `r` is for the read a delete without a context makes.
    Delete {
        bucket: Option<&'a Bucket>,
        r: Option<usize>,
        w: Option<usize>,
        context: &'a Context,
    },
    /// `GET /counter/{key}`.
    Counter { r: Option<usize> },
    /// `POST /counter/{key}?by=`: not idempotent, see [`Op::may_retry`].
    Incr { by: i64, w: Option<usize> },
    /// `GET /set/{key}`.
    SMembers { r: Option<usize> },
    /// `PUT /set/{key}/{member}`.
    SAdd { member: &'a str, w: Option<usize> },
    /// `DELETE /set/{key}/{member}`.
    SRem { member: &'a str, w: Option<usize> },
    /// A page of a bucket's keys (`GET /buckets/{bucket}/keys`).
    Keys {
        bucket: &'a str,
        limit: usize,
        after: Option<&'a str>,
    },
    /// `GET /hash/{key}`.
    HGetAll { r: Option<usize> },
    /// `PUT /hash/{key}/{field}` with the value.
    HSet {
        field: &'a str,
        value: &'a [u8],
        w: Option<usize>,
    },
    /// `POST /hash/{key}/{field}?by=`: not idempotent, as [`Op::Incr`].
    HIncrBy {
        field: &'a str,
        by: i64,
        w: Option<usize>,
    },
    /// `DELETE /hash/{key}/{field}`.
    HDel { field: &'a str, w: Option<usize> },
    /// `GET /buckets/{key}` (the key is the bucket's name).
    Bucket,
    /// `GET /buckets`.
    Buckets,
    /// `PUT /admin/buckets/{key}` with the definition as JSON.
    DefineBucket { body: Vec<u8> },
}

/// A node's complete answer.
pub(crate) struct Answer {
    pub node: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Op<'_> {
    /// Reads change nothing, so any failed read may be asked of another
    /// node; a write only when it surely was not delivered (see
    /// [`Op::may_retry`]).
    fn is_read(&self) -> bool {
        matches!(
            self,
            Op::Get { .. }
                | Op::Counter { .. }
                | Op::SMembers { .. }
                | Op::HGetAll { .. }
                | Op::Keys { .. }
                | Op::Bucket
                | Op::Buckets
        )
    }

    /// Whether `error` from one node allows trying the next one. A write
    /// that may have been applied is not resent: the caller decides (a
    /// resent write with the same context at worst adds a duplicate
    /// sibling, but it is the caller's write).
    ///
    /// An increment ([`Op::Incr`]) is resent only when the node answered
    /// that it did nothing — never once it may have been applied, since
    /// applying it twice would count it twice. So after a timeout, a
    /// connection lost after sending, a `503` without `Retry-After` (a
    /// quorum not reached: the coordinator may have written to some
    /// replicas) or a `504` (the node's coordinator fell silent with it) it
    /// is not retried, and the error says its outcome is unknown.
    pub fn may_retry(&self, error: &Error) -> bool {
        match error {
            // The connection could not be made: nothing was sent.
            Error::Unreachable { .. } => true,
            Error::Interrupted { .. } | Error::Timeout { .. } => self.is_read(),
            // That coordinator could not reach a quorum, or its disk
            // failed; another coordinator may do better.
            Error::Server { status, .. } => self.is_read() && (*status == 503 || *status == 500),
            // Shed before it was started: a write too (see `backoff`). A
            // write a node forwarded to a coordinator that refused it may,
            // rarely, also have reached one that applied it before failing
            // (a hedge): the retry then leaves a duplicate sibling, the
            // same as a hedged write, never a lost one. An increment is
            // never hedged nor sent on once a coordinator may have taken
            // it (the node answers `504` then), so its `503` with
            // `Retry-After` means that no node applied it.
            Error::Overloaded { .. } => true,
            _ => false,
        }
    }

    /// The key the nodes store it under, which the client routes by: a
    /// counter or set key `k` is the Redis keyspace's internal key
    /// (`\0r` then `k`), a `/kv` key itself.
    pub fn routing_key(&self, key: &str) -> Vec<u8> {
        match self {
            Op::Get {
                bucket: Some(b), ..
            }
            | Op::Put {
                bucket: Some(b), ..
            }
            | Op::Delete {
                bucket: Some(b), ..
            } => b.routing_key(key),
            Op::Get { .. }
            | Op::Put { .. }
            | Op::Delete { .. }
            | Op::Keys { .. }
            | Op::Bucket
            | Op::Buckets
            | Op::DefineBucket { .. } => key.as_bytes().to_vec(),
            Op::Counter { .. }
            | Op::Incr { .. }
            | Op::SMembers { .. }
            | Op::SAdd { .. }
            | Op::SRem { .. }
            | Op::HGetAll { .. }
            | Op::HSet { .. }
            | Op::HIncrBy { .. }
            | Op::HDel { .. } => lww_key(key.as_bytes()),
        }
    }

    /// The request for `node` (`host:port`).
    pub fn request(&self, http: &Http, node: &str, key: &str) -> reqwest::RequestBuilder {
        let r = |r: &Option<usize>| r.map(|r| format!("?r={r}")).unwrap_or_default();
        let w = |w: &Option<usize>| w.map(|w| format!("?w={w}")).unwrap_or_default();
        let key = encode_key(key);
        let at = |bucket: &Option<&Bucket>| match bucket {
            Some(b) => format!("/buckets/{}/keys/{key}", encode_key(&b.name)),
            None => format!("/kv/{key}"),
        };
        let (method, path) = match self {
            Op::Get { r: q, bucket } => (Method::GET, format!("{}{}", at(bucket), r(q))),
            Op::Put { w: q, bucket, .. } => (Method::PUT, format!("{}{}", at(bucket), w(q))),
            Op::Bucket => (Method::GET, format!("/buckets/{key}")),
            Op::Buckets => (Method::GET, "/buckets".to_string()),
            Op::DefineBucket { .. } => (Method::PUT, format!("/admin/buckets/{key}")),
            Op::Delete {
                r: rq,
                w: wq,
                bucket,
                ..
            } => {
                let query: Vec<String> = [("r", rq), ("w", wq)]
                    .into_iter()
                    .filter_map(|(name, q)| q.map(|q| format!("{name}={q}")))
                    .collect();
                let query = match query.is_empty() {
                    true => String::new(),
                    false => format!("?{}", query.join("&")),
                };
                (Method::DELETE, format!("{}{query}", at(bucket)))
            }
            Op::Counter { r: q } => (Method::GET, format!("/counter/{key}{}", r(q))),
            Op::Incr { by, w: q } => {
                let quorum = q.map(|w| format!("&w={w}")).unwrap_or_default();
                (Method::POST, format!("/counter/{key}?by={by}{quorum}"))
            }
            Op::SMembers { r: q } => (Method::GET, format!("/set/{key}{}", r(q))),
            Op::SAdd { member, w: q } => {
                let member = encode_key(member);
                (Method::PUT, format!("/set/{key}/{member}{}", w(q)))
            }
            Op::SRem { member, w: q } => {
                let member = encode_key(member);
                (Method::DELETE, format!("/set/{key}/{member}{}", w(q)))
            }
            Op::HGetAll { r: q } => (Method::GET, format!("/hash/{key}{}", r(q))),
            Op::Keys {
                bucket,
                limit,
                after,
            } => {
                let after = after.map(|a| format!("&after={}", encode_key(a)));
                let path = format!(
                    "/buckets/{}/keys?limit={limit}{}",
                    encode_key(bucket),
                    after.unwrap_or_default()
                );
                (Method::GET, path)
            }
            Op::HSet { field, w: q, .. } => {
                let field = encode_key(field);
                (Method::PUT, format!("/hash/{key}/{field}{}", w(q)))
            }
            Op::HIncrBy { field, by, w: q } => {
                let field = encode_key(field);
                let quorum = q.map(|w| format!("&w={w}")).unwrap_or_default();
                (Method::POST, format!("/hash/{key}/{field}?by={by}{quorum}"))
            }
            Op::HDel { field, w: q } => {
                let field = encode_key(field);
                (Method::DELETE, format!("/hash/{key}/{field}{}", w(q)))
            }
        };
        let builder = http.request(method, node, &path);
        match self {
            Op::Get { .. } => builder.header(reqwest::header::ACCEPT, "application/json"),
            Op::Put {
                value,
                context,
                ttl,
                ..
            } => {
                let builder = match ttl {
                    Some(seconds) => builder.header("x-ringkv-ttl", seconds.to_string()),
                    None => builder,
                };
                with_context(builder, context).body(value.to_vec())
            }
            Op::Delete { context, .. } => with_context(builder, context),
            Op::HSet { value, .. } => builder.body(value.to_vec()),
            Op::DefineBucket { body } => builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone()),
            _ => builder,
        }
    }
}

fn with_context(builder: reqwest::RequestBuilder, context: &Context) -> reqwest::RequestBuilder {
    match context.as_str() {
        Some(ctx) => builder.header(CONTEXT_HEADER, ctx),
        None => builder,
    }
}

/// Percent-encode a key so any bytes survive as one path segment of
/// `/kv/{key}`.
pub fn encode_key(key: &str) -> String {
    let mut segment = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            segment.push(b as char);
        } else {
            segment.push_str(&format!("%{b:02X}"));
        }
    }
    segment
}

/// Send one attempt and read the whole answer within `limit`.
pub(crate) async fn attempt(
    request: reqwest::RequestBuilder,
    node: &str,
    limit: Duration,
) -> Result<Answer, Error> {
    let failed = |e| Error::from_transport(node, limit, e);
    let response = request.timeout(limit).send().await.map_err(failed)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(failed)?.to_vec();
    let answer = Answer {
        node: node.to_string(),
        status,
        headers,
        body,
    };
    if let Some(retry_after) = shed(&answer) {
        return Err(Error::Overloaded {
            node: answer.node,
            message: String::from_utf8_lossy(&answer.body).trim().to_string(),
            retry_after,
        });
    }
    // 404 is a read's answer (missing key), not a failure.
    let is_error = status.is_server_error() || status.is_client_error();
    if is_error && status != StatusCode::NOT_FOUND {
        return Err(Error::Server {
            node: answer.node,
            status: status.as_u16(),
            message: String::from_utf8_lossy(&answer.body).trim().to_string(),
        });
    }
    Ok(answer)
}

/// How long the node asks to be left alone when it shed the request: a
/// `503` with `Retry-After` (in seconds) is an overload refusal, which a
/// `503` for a lost quorum never carries.
fn shed(answer: &Answer) -> Option<Duration> {
    if answer.status != StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }
    let value = answer.headers.get(reqwest::header::RETRY_AFTER)?;
    let seconds = value.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds))
}

/// How long to wait before attempt `retry` (1 for the first retry) after
/// an overloaded node asked for `retry_after`: exponential from 50 ms,
/// never above `retry_after`, with "full jitter" (a random share of it)
/// so clients shed together do not come back together.
pub(crate) fn backoff(retry: usize, retry_after: Duration) -> Duration {
    use std::hash::BuildHasher;
    let exponent = u32::try_from(retry.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    let ceiling = (Duration::from_millis(50) * 2u32.pow(exponent)).min(retry_after);
    let random = std::collections::hash_map::RandomState::new().hash_one(retry);
    let share = (random % 1000) as u32;
    ceiling / 2 + ceiling / 2 * share / 1000
}

impl Answer {
    /// The context header, when the node sent one.
    fn context(&self) -> Result<Context, Error> {
        let Some(value) = self.headers.get(CONTEXT_HEADER) else {
            return Ok(Context::none());
        };
        value
            .to_str()
            .map(|text| Context::from(text.to_string()))
            .map_err(|_| self.bad("the causal context is not ASCII"))
    }

    /// A read's answer: `404` is a missing (or deleted) key, which still
    /// carries a context so a write can supersede a tombstone.
    pub fn versions(&self) -> Result<Versions, Error> {
        match self.status {
            StatusCode::NOT_FOUND => Ok(Versions {
                context: self.context()?,
                siblings: Vec::new(),
            }),
            StatusCode::OK | StatusCode::MULTIPLE_CHOICES => {
                Versions::from_json(&self.body).map_err(|reason| self.bad(&reason))
            }
            other => Err(self.bad(&format!("status {other} to a read"))),
        }
    }

    /// A write's answer: the new version's context.
    pub fn written(&self) -> Result<Context, Error> {
        if self.status != StatusCode::NO_CONTENT {
            return Err(self.bad(&format!("status {} to a write", self.status)));
        }
        match self.context()? {
            context if context.as_str().is_some() => Ok(context),
            _ => Err(self.bad("a write was answered without its context")),
        }
    }

    /// A counter read's answer: `None` when the key holds nothing.
    pub fn counter(&self) -> Result<Option<i64>, Error> {
        match self.status {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::OK => Ok(Some(self.json::<CounterJson>()?.value)),
            other => Err(self.bad(&format!("status {other} to a counter read"))),
        }
    }

    /// An increment's answer: the counter's new value.
    pub fn incremented(&self) -> Result<i64, Error> {
        match self.status {
            StatusCode::OK => Ok(self.json::<CounterJson>()?.value),
            other => Err(self.bad(&format!("status {other} to an increment"))),
        }
    }

    /// A set read's answer: its members, none when the key holds nothing.
    /// A member that is not UTF-8 (only the Redis protocol can add one)
    /// fails the read rather than being left out.
    pub fn members(&self) -> Result<Vec<String>, Error> {
        match self.status {
            StatusCode::NOT_FOUND => Ok(Vec::new()),
            StatusCode::OK => {
                let json = self.json::<MembersJson>()?;
                match json.binary_members.len() {
                    0 => Ok(json.members),
                    n => Err(self.bad(&format!(
                        "the set holds {n} member(s) that are not UTF-8 text (added over the \
                         Redis protocol; read them with SMEMBERS)"
                    ))),
                }
            }
            other => Err(self.bad(&format!("status {other} to a set read"))),
        }
    }

    /// A bucket's properties (`GET /buckets/{b}`, or a definition's answer).
    pub fn bucket(&self) -> Result<Bucket, Error> {
        match self.status {
            StatusCode::OK | StatusCode::CREATED => self.json::<Bucket>(),
            StatusCode::NOT_FOUND => Err(Error::Server {
                node: self.node.clone(),
                status: 404,
                message: String::from_utf8_lossy(&self.body).trim().to_string(),
            }),
            other => Err(self.bad(&format!("status {other} to a bucket request"))),
        }
    }

    /// Every bucket (`GET /buckets`).
    pub fn buckets(&self) -> Result<Vec<Bucket>, Error> {
        match self.status {
            StatusCode::OK => Ok(self.json::<BucketList>()?.buckets),
            other => Err(self.bad(&format!("status {other} to a bucket listing"))),
        }
    }

    /// A key listing's page.
    pub fn keys(&self) -> Result<KeysPage, Error> {
        match self.status {
            StatusCode::OK => self.json::<KeysPage>(),
            StatusCode::NOT_FOUND => Err(Error::Server {
                node: self.node.clone(),
                status: 404,
                message: String::from_utf8_lossy(&self.body).trim().to_string(),
            }),
            other => Err(self.bad(&format!("status {other} to a key listing"))),
        }
    }

    /// A hash read's answer: field → value, none when the key holds
    /// nothing. A field or value that is not UTF-8 fails the read.
    pub fn fields(&self) -> Result<BTreeMap<String, String>, Error> {
        match self.status {
            StatusCode::NOT_FOUND => Ok(BTreeMap::new()),
            StatusCode::OK => {
                let json = self.json::<FieldsJson>()?;
                match json.binary_fields.len() {
                    0 => Ok(json.fields),
                    n => Err(self.bad(&format!(
                        "the hash holds {n} field(s) that are not UTF-8 text (written over the \
                         Redis protocol; read them with HGETALL)"
                    ))),
                }
            }
            other => Err(self.bad(&format!("status {other} to a hash read"))),
        }
    }

    /// A set update's answer: whether it changed the set (`field` is
    /// `added` or `removed`).
    pub fn changed(&self, field: &str) -> Result<bool, Error> {
        if self.status != StatusCode::OK {
            return Err(self.bad(&format!("status {} to a set update", self.status)));
        }
        let json: serde_json::Value = self.json()?;
        match json.get(field).and_then(serde_json::Value::as_i64) {
            Some(n) => Ok(n > 0),
            None => Err(self.bad(&format!("no {field} in the answer"))),
        }
    }

    fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| self.bad(&format!("not the JSON expected: {e}")))
    }

    fn bad(&self, reason: &str) -> Error {
        Error::BadAnswer {
            node: self.node.clone(),
            reason: reason.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct CounterJson {
    value: i64,
}

#[derive(Deserialize)]
struct MembersJson {
    members: Vec<String>,
    #[serde(default)]
    binary_members: Vec<String>,
}

/// A page of a bucket's keys: the keys, and the cursor to go on from
/// (`None`: the listing is complete).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct KeysPage {
    pub keys: Vec<ListedKey>,
    pub next: Option<String>,
}

/// One listed key: text, or base64 when it is not UTF-8 (a Redis key),
/// and its type (`kv` for a `/kv` key, else the Redis type).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ListedKey {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub key_base64: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Deserialize)]
struct FieldsJson {
    fields: BTreeMap<String, String>,
    #[serde(default)]
    binary_fields: Vec<[String; 2]>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_core::keyspace::ConflictPolicy;

    #[test]
    fn keys_become_one_path_segment() {
        assert_eq!(encode_key("cart:ada/1 é"), "cart%3Aada%2F1%20%C3%A9");
        assert_eq!(encode_key("plain-key_1.~"), "plain-key_1.~");
    }

    #[test]
    fn only_reads_and_undelivered_writes_are_retried() {
        let ctx = Context::none();
        let get = Op::Get {
            r: None,
            bucket: None,
        };
        let put = Op::Put {
            bucket: None,
            w: None,
            value: b"v",
            context: &ctx,
            ttl: None,
        };
        let server = |status| Error::Server {
            node: "n".into(),
            status,
            message: String::new(),
        };
        let timeout = Error::Timeout {
            node: "n".into(),
            limit: Duration::from_secs(1),
        };
        let shed = Error::Overloaded {
            node: "n".into(),
            message: String::new(),
            retry_after: Duration::from_secs(1),
        };
        assert!(get.may_retry(&server(503)));
        assert!(get.may_retry(&timeout));
        assert!(!get.may_retry(&server(400)));
        assert!(!put.may_retry(&server(503)));
        assert!(!put.may_retry(&timeout));
        assert!(put.may_retry(&shed) && get.may_retry(&shed));
    }

    #[test]
    fn an_increment_is_resent_only_after_a_refusal_that_did_nothing() {
        let incr = Op::Incr { by: 1, w: None };
        let counter = Op::Counter { r: None };
        let server = |status| Error::Server {
            node: "n".into(),
            status,
            message: String::new(),
        };
        let timeout = Error::Timeout {
            node: "n".into(),
            limit: Duration::from_secs(1),
        };
        let shed = Error::Overloaded {
            node: "n".into(),
            message: String::new(),
            retry_after: Duration::from_secs(1),
        };
        // May have been applied: never sent again.
        for error in [timeout, server(503), server(504), server(500), server(409)] {
            assert!(!incr.may_retry(&error), "{error}");
        }
        // The node said it did nothing.
        assert!(incr.may_retry(&shed));
        // Reading the counter is safe to ask anyone.
        assert!(counter.may_retry(&server(503)) && counter.may_retry(&shed));
        // tests/retries.rs sends each case over the wire, refused
        // connections and cut-off answers included.
    }

    #[test]
    fn typed_keys_route_by_their_internal_key() {
        let incr = Op::Incr { by: 1, w: None };
        assert_eq!(incr.routing_key("hits"), b"\0rhits");
        let get = |bucket| Op::Get { r: None, bucket };
        assert_eq!(get(None).routing_key("hits"), b"hits");
        let carts = Bucket {
            name: "carts".into(),
            props: ringkv_core::bucket::BucketProps::new(2, ConflictPolicy::Lww),
        };
        let mut internal = vec![0, b'b', b'l', 2, 5];
        internal.extend_from_slice(b"cartshits");
        assert_eq!(get(Some(&carts)).routing_key("hits"), internal);
    }

    #[test]
    fn backoff_grows_from_50_ms_within_retry_after_with_jitter() {
        let second = Duration::from_secs(1);
        for retry in 1..20 {
            let wait = backoff(retry, second);
            let ceiling =
                (Duration::from_millis(50) * 2u32.pow((retry as u32 - 1).min(16))).min(second);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "retry {retry}: {wait:?}"
            );
        }
        assert!(backoff(1, Duration::ZERO).is_zero());
    }

    #[test]
    fn only_a_503_with_retry_after_is_an_overload() {
        let answer = |status: u16, retry: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(value) = retry {
                headers.insert(reqwest::header::RETRY_AFTER, value.parse().unwrap());
            }
            Answer {
                node: "n".into(),
                status: StatusCode::from_u16(status).unwrap(),
                headers,
                body: Vec::new(),
            }
        };
        assert_eq!(shed(&answer(503, Some("1"))), Some(Duration::from_secs(1)));
        assert_eq!(shed(&answer(503, None)), None);
        assert_eq!(shed(&answer(500, Some("1"))), None);
        assert_eq!(shed(&answer(503, Some("soon"))), None);
    }
}
