//! Key listing over HTTP: `GET /buckets/{bucket}/keys?limit=N&after=C`,
//! Riak's path, for any bucket — `default` holds the `/kv` keys, `redis`
//! the Redis protocol's keys (with their types).
//!
//! The listing is the coverage query of Redis `SCAN` (see
//! `ringkv_core::node`'s scan): keys in ring-token order, each range asked
//! of one replica, a page at a time from the cursor `after` (absent: from
//! the start). The answer is `{"keys": [{"key": …, "type": …}], "next":
//! C}`; `next` is `null` once the whole ring was covered. A page may hold
//! fewer than `limit` keys — even none — while `next` is not null (every
//! key examined counts towards a page's cost, `/kv` and Redis keys alike).
//! What it promises is `SCAN`'s: a key present throughout a listing is
//! listed at least once; one written meanwhile, or not yet on the replica
//! asked, may be missed. A key that is not UTF-8 (a Redis key can be any
//! bytes) comes as `key_base64` instead of `key`.

use crate::http::{bad_request, unexpected_reply, Api, ApiError};
use crate::http_buckets::Bucket;
use crate::http_crdt::parse_query;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ringkv_core::message::{ClientOp, ClientReply};
use ringkv_core::node::SCAN_MAX_COUNT;
use serde::{Deserialize, Serialize};

/// Keys a listing answers when no `limit` is given.
const DEFAULT_LIMIT: usize = 1_000;
/// Pages (one replica's answer each) one request asks for at most: a
/// request's cost stays bounded however sparse the keyspace is.
const MAX_PAGES: usize = 64;

pub fn routes() -> Router<Api> {
    Router::new().route("/buckets/{bucket}/keys", get(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<usize>,
    /// The `next` of the previous answer.
    after: Option<String>,
}

#[derive(Serialize)]
struct Listing {
    keys: Vec<ListedKey>,
    next: Option<String>,
}

#[derive(Serialize)]
struct ListedKey {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_base64: Option<String>,
    #[serde(rename = "type")]
    kind: String,
}

impl ListedKey {
    fn new(key: Vec<u8>, kind: String) -> ListedKey {
        match String::from_utf8(key) {
            Ok(key) => ListedKey {
                key: Some(key),
                key_base64: None,
                kind,
            },
            Err(e) => ListedKey {
                key: None,
                key_base64: Some(BASE64.encode(e.as_bytes())),
                kind,
            },
        }
    }
}

async fn list(
    State(api): State<Api>,
    Path(bucket): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let keyspace = Bucket::resolve(&api, &bucket)?.keyspace();
    let q = parse_query(query)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=SCAN_MAX_COUNT).contains(&limit) {
        return Err(bad_request(format!(
            "limit must be 1 to {SCAN_MAX_COUNT}, got {limit}"
        )));
    }
    let mut cursor = match q.after.as_deref() {
        None => 0,
        Some(after) => after
            .parse::<u64>()
            .ok()
            .filter(|c| *c != 0)
            .ok_or_else(|| {
                bad_request("after must be the next of an earlier answer (a number above 0)")
            })?,
    };
    let mut keys = Vec::new();
    for _ in 0..MAX_PAGES {
        let count = limit - keys.len();
        let op = ClientOp::Scan {
            cursor,
            count,
            keyspace: keyspace.clone(),
        };
        let ClientReply::Keys {
            keys: page,
            cursor: next,
        } = api.node.request(op, api.request_limit).await?
        else {
            return Err(unexpected_reply());
        };
        keys.extend(
            page.into_iter()
                .map(|(key, kind)| ListedKey::new(key, kind)),
        );
        cursor = next;
        if cursor == 0 || keys.len() >= limit {
            break;
        }
    }
    let next = (cursor != 0).then(|| cursor.to_string());
    Ok(Json(Listing { keys, next }).into_response())
}
