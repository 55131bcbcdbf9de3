//! Buckets over HTTP (see [`ringkv_core::bucket`]).
//!
//! - `PUT /admin/buckets/{bucket}` (admin) creates or changes a bucket
//!   from a JSON body (`n`, `policy`, `r`, `w`, `pw`, `ttl_seconds`,
//!   `max_value_bytes`, all optional). A PUT replaces what it names and
//!   resets what it leaves out to the node defaults; `n` and `policy` of a
//!   bucket that exists may be left out (kept) but never changed.
//! - `GET /buckets` and `GET /buckets/{bucket}` show them.
//! - `/buckets/{bucket}/keys/{key}` is a key of a bucket, with the same
//!   verbs, headers and answers as `/kv/{key}` (which is the `default`
//!   bucket's), the bucket's quorums, TTL and value limit applying to a
//!   request that gives none. A `lww` bucket's read answers its single
//!   latest version, never siblings. A `typed` bucket's keys hold CRDTs
//!   and are served by the Redis port (`redis_bucket`), and for the
//!   `redis` bucket by `/counter`, `/set` and `/hash`.

use crate::http::{bad_request, unexpected_reply, Api, ApiError};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use ringkv_core::bucket::{self, BucketDefinition, BucketProps};
use ringkv_core::keyspace::{self, ConflictPolicy, Keyspace};
use ringkv_core::message::{ClientOp, ClientReply};
use ringkv_core::Millis;
use serde::Serialize;

/// A bucket a request names, as this node knows it now.
pub(crate) struct Bucket {
    pub name: String,
    pub props: BucketProps,
    prefix: Vec<u8>,
}

impl Bucket {
    /// Bucket `name`; `404` with a sentence when this node knows none.
    pub fn resolve(api: &Api, name: &str) -> Result<Bucket, ApiError> {
        let Some(props) = api.node.bucket(name) else {
            let message = format!(
                "no bucket named {name:?}; GET /buckets lists them (a new bucket reaches every \
                 node within a few gossip rounds)"
            );
            return Err(ApiError::new(StatusCode::NOT_FOUND, message));
        };
        Ok(Bucket {
            prefix: bucket::prefix(name, &props),
            name: name.to_string(),
            props,
        })
    }

    /// The internal key of `user_key` in this bucket; `400` when it is
    /// empty, too long once prefixed, or would fall into an internal
    /// keyspace.
    pub fn key(&self, api: &Api, user_key: String) -> Result<Vec<u8>, ApiError> {
        if keyspace::is_reserved(user_key.as_bytes()) {
            return Err(bad_request(
                "keys starting with the byte 0x00 are reserved for internal keyspaces",
            ));
        }
        let limit = api.max_key_bytes - self.prefix.len();
        if user_key.is_empty() || user_key.len() > limit {
            let message = match self.prefix.len() {
                0 => format!("key must be 1 to {limit} bytes, got {}", user_key.len()),
                p => format!(
                    "key must be 1 to {limit} bytes in bucket {} (max_key_bytes minus its \
                     {p}-byte prefix), got {}",
                    self.name,
                    user_key.len()
                ),
            };
            return Err(bad_request(message));
        }
        Ok([&self.prefix[..], user_key.as_bytes()].concat())
    }

    pub fn keyspace(&self) -> Keyspace {
        Keyspace::of_bucket(&self.name, &self.props)
    }

    /// The largest value a write may carry.
    pub fn max_value_bytes(&self, api: &Api) -> usize {
        self.props.max_value_bytes.unwrap_or(api.max_value_bytes)
    }

    /// The TTL of a write that gives none, ms.
    pub fn default_ttl_ms(&self) -> Option<Millis> {
        self.props.ttl_seconds.map(|s| s * 1000)
    }

    /// `/buckets/{b}/keys/{k}` serves sibling and last-write-wins buckets.
    pub fn check_plain(&self) -> Result<(), ApiError> {
        if self.props.policy != ConflictPolicy::Typed {
            return Ok(());
        }
        Err(bad_request(format!(
            "bucket {} holds typed values (counters, sets, …): use the Redis port, or \
             /counter, /set and /hash for the redis bucket",
            self.name
        )))
    }
}

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/buckets", get(list))
        .route("/buckets/{bucket}", get(show))
        .route("/admin/buckets/{bucket}", put(define))
}

/// A bucket as JSON: its name and properties.
#[derive(Serialize)]
struct Shown {
    name: String,
    #[serde(flatten)]
    props: BucketProps,
}

#[derive(Serialize)]
struct Listing {
    buckets: Vec<Shown>,
}

async fn list(State(api): State<Api>) -> Json<Listing> {
    let buckets = api
        .node
        .buckets()
        .into_iter()
        .map(|(name, props)| Shown { name, props })
        .collect();
    Json(Listing { buckets })
}

async fn show(State(api): State<Api>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let bucket = Bucket::resolve(&api, &name)?;
    let shown = Shown {
        name: bucket.name,
        props: bucket.props,
    };
    Ok(Json(shown).into_response())
}

async fn define(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Result<Json<BucketDefinition>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(d) = body.map_err(|e| {
        bad_request(format!(
            "the body must be a JSON object of n, policy (siblings, lww or typed), r, w, pw, \
             ttl_seconds, max_value_bytes: {}",
            e.body_text()
        ))
    })?;
    let before = api.node.bucket(&name);
    let props = d.props(before.as_ref(), api.node.cluster_n());
    let op = ClientOp::DefineBucket {
        key: bucket::definition_key(&name),
        name: name.clone(),
        props: props.clone(),
    };
    match api.node.request(op, api.request_limit).await? {
        ClientReply::BucketDefined(table) => {
            api.node.refresh_buckets().await;
            // Created, unless the deciding node knew the bucket already
            // (this node may not have heard of it yet).
            let status = match before {
                None => StatusCode::CREATED,
                Some(_) => StatusCode::OK,
            };
            let props = table.get(&name, api.node.cluster_n()).unwrap_or(props);
            Ok((status, Json(Shown { name, props })).into_response())
        }
        _ => Err(unexpected_reply()),
    }
}
