//! Hashes over HTTP: `/hash/{key}[/{field}]` reads and updates the same
//! typed keys as Redis's `HSET`, `HGET`, `HGETALL`, `HDEL` and `HINCRBY`
//! (see [`crate::http_crdt`] for the keyspace, quorums and path rules).
//!
//! | request | Redis | answer |
//! |---|---|---|
//! | `GET /hash/{key}` | `HGETALL` | `{"fields": {"f": "v", …}}` |
//! | `GET /hash/{key}/{field}` | `HGET` | `{"value": "v"}`, `404` for no such field |
//! | `PUT /hash/{key}/{field}` (body: the value) | `HSET` | `{"added": 1}` or `0` |
//! | `POST /hash/{key}/{field}?by=N` | `HINCRBY` | `{"value": n}` |
//! | `DELETE /hash/{key}/{field}` | `HDEL` | `{"removed": 1}` or `0` |
//! | `DELETE /hash/{key}` | `DEL` | `{"deleted": 1}` or `0` |

use crate::http::{not_found, Api, ApiError, ReadQuorum};
use crate::http_crdt::{
    counted, key_and_member, no_body, parse_query, read, refused, typed_key, update, IncrQuery,
    UpdateQuorum,
};
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ringkv_core::crdt::{CrdtError, OrMap, Update, Value};
use serde::Serialize;
use std::collections::BTreeMap;

/// The operations these requests are counted under (`del` is
/// [`crate::http_crdt::OPS`]'s).
pub const OPS: [&str; 5] = ["hgetall", "hget", "hset", "hincrby", "hdel"];

pub fn routes() -> Router<Api> {
    Router::new()
        .route(
            "/hash/{key}",
            get(hgetall).delete(crate::http_crdt::delete_key),
        )
        .route(
            "/hash/{key}/{field}",
            get(hget).put(hset).post(hincrby).delete(hdel),
        )
}

/// The op a request for `path` is counted under; `None` when `path` is
/// not a hash path.
pub fn op_of(method: &Method, path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("/hash/")?;
    let read = *method == Method::GET || *method == Method::HEAD;
    Some(match (rest.split('/').count(), method) {
        (1, _) if read => "hgetall",
        (1, &Method::DELETE) => "del",
        (2, _) if read => "hget",
        (2, &Method::PUT) => "hset",
        (2, &Method::POST) => "hincrby",
        (2, &Method::DELETE) => "hdel",
        _ => "other",
    })
}

#[derive(Serialize)]
struct FieldsJson {
    /// Field → value, in field byte order, as `HGETALL` answers.
    fields: BTreeMap<String, String>,
    /// Fields or values that are not UTF-8 (only the Redis protocol can
    /// write one), as `[field, value]` in base64; left out when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    binary_fields: Vec<[String; 2]>,
}

async fn hash(api: &Api, key: Vec<u8>, q: ReadQuorum) -> Result<Option<OrMap>, ApiError> {
    match read(api, key, q).await? {
        None => Ok(None),
        Some(Value::Hash(hash)) => Ok(Some(hash)),
        Some(_) => Err(refused(CrdtError::WrongType)),
    }
}

/// `GET /hash/{key}`: every field; `404` when the key holds nothing,
/// `409` for another type.
async fn hgetall(
    State(api): State<Api>,
    key: Result<Path<String>, PathRejection>,
    quorum: Result<Query<ReadQuorum>, QueryRejection>,
) -> Result<Response, ApiError> {
    let key = typed_key(&api, key)?;
    let q = parse_query(quorum)?;
    let Some(hash) = hash(&api, key, q).await? else {
        return Ok(not_found());
    };
    let mut json = FieldsJson {
        fields: BTreeMap::new(),
        binary_fields: Vec::new(),
    };
    for (field, value) in hash.iter() {
        let value = value.bytes();
        match (std::str::from_utf8(field), String::from_utf8(value.clone())) {
            (Ok(f), Ok(v)) => {
                json.fields.insert(f.to_string(), v);
            }
            _ => json
                .binary_fields
                .push([BASE64.encode(field), BASE64.encode(&value)]),
        }
    }
    Ok(Json(json).into_response())
}

/// `GET /hash/{key}/{field}`: `{"value": "…"}` (a counter field as its
/// decimal value, as `HGET`); `404` when the key or field is missing.
async fn hget(
    State(api): State<Api>,
    path: Result<Path<(String, String)>, PathRejection>,
    quorum: Result<Query<ReadQuorum>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (key, field) = key_and_member(&api, path)?;
    let q = parse_query(quorum)?;
    let found = hash(&api, key, q).await?.and_then(|h| h.get(&field));
    let Some((value, _, _)) = found else {
        return Ok(not_found());
    };
    let value = String::from_utf8_lossy(&value.bytes()).into_owned();
    Ok(Json(serde_json::json!({ "value": value })).into_response())
}

/// `PUT /hash/{key}/{field}` with the value as the body.
async fn hset(
    State(api): State<Api>,
    path: Result<Path<(String, String)>, PathRejection>,
    quorum: Result<Query<UpdateQuorum>, QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (key, field) = key_and_member(&api, path)?;
    let q = parse_query(quorum)?;
    let pairs = vec![(field, body.to_vec())];
    let added = update(&api, key, Update::HSet(pairs), q.w, q.pw).await?;
    Ok(counted("added", added))
}

/// `POST /hash/{key}/{field}?by=N`: the field as a PN-counter; never
/// re-sent (see `INCR`).
async fn hincrby(
    State(api): State<Api>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<IncrQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (key, field) = key_and_member(&api, path)?;
    let q = parse_query(query)?;
    no_body(&body, "the increment goes in ?by=")?;
    let value = update(&api, key, Update::HIncrBy(field, q.by), q.w, q.pw).await?;
    Ok(counted("value", value))
}

/// `DELETE /hash/{key}/{field}`.
async fn hdel(
    State(api): State<Api>,
    path: Result<Path<(String, String)>, PathRejection>,
    quorum: Result<Query<UpdateQuorum>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (key, field) = key_and_member(&api, path)?;
    let q = parse_query(quorum)?;
    let removed = update(&api, key, Update::HDel(vec![field]), q.w, q.pw).await?;
    Ok(counted("removed", removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hash_request_is_counted_under_a_fixed_op() {
        let cases = [
            (Method::GET, "/hash/cart", "hgetall"),
            (Method::DELETE, "/hash/cart", "del"),
            (Method::GET, "/hash/cart/sku", "hget"),
            (Method::PUT, "/hash/cart/sku", "hset"),
            (Method::POST, "/hash/cart/sku", "hincrby"),
            (Method::DELETE, "/hash/cart/sku", "hdel"),
            (Method::PATCH, "/hash/cart/sku", "other"),
            (Method::GET, "/hash/a/b/c", "other"),
        ];
        for (method, path, op) in cases {
            assert_eq!(op_of(&method, path), Some(op), "{method} {path}");
            assert!(op == "other" || op == "del" || OPS.contains(&op));
        }
        assert_eq!(op_of(&Method::GET, "/kv/x"), None);
    }
}
