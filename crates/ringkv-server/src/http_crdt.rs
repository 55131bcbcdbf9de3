//! Counters and sets over HTTP, for clients that do not speak the Redis
//! protocol: `/counter/{key}` and `/set/{key}[/{member}]` read and update
//! the *same* typed keys as Redis's `INCR` and `SADD` (the internal key
//! [`lww_key`]`(key)`, holding a [`Value`]), so `INCR hits` and
//! `POST /counter/hits` count on one counter.
//!
//! A read resolves the siblings an R quorum returns with
//! [`crdt::resolve`]; an update is a [`ClientOp::Update`] that the
//! coordinator applies, exactly as the Redis front end sends it
//! (`crate::resp::exec`). Keys and members are one percent-encoded path
//! segment each (a `/` in them is `%2F`) and UTF-8 text, like `/kv` keys;
//! a member that is not UTF-8 — only the Redis protocol can add one — is
//! listed apart, in base64 (`binary_members`), rather than mangled.

use crate::http::{bad_request, not_found, unexpected_reply, Api, ApiError, ReadQuorum};
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ringkv_core::crdt::{self, CrdtError, Update, Value};
use ringkv_core::keyspace::{lww_key, LWW_PREFIX};
use ringkv_core::message::{ClientError, ClientOp, ClientReply};
use serde::{Deserialize, Serialize};

/// The operations these requests are counted under in
/// `ringkv_requests_total` (`del` for `DELETE /counter/{key}` and
/// `DELETE /set/{key}`): a fixed list, never user input.
pub const OPS: [&str; 6] = ["counter", "incr", "smembers", "sadd", "srem", "del"];

/// The routes; [`crate::http::router`] puts them under the `/kv` request
/// limit, next to `/kv`.
pub fn routes() -> Router<Api> {
    Router::new()
        .route(
            "/counter/{key}",
            get(read_counter).post(incr).delete(delete_key),
        )
        .route("/set/{key}", get(read_set).delete(delete_key))
        .route("/set/{key}/{member}", put(sadd).delete(srem))
}

/// The op a request for `path` is counted under; `None` when `path` is
/// not a counter or set path (`"other"` for one that is but names no
/// operation, e.g. `PATCH /counter/k`).
pub fn op_of(method: &Method, path: &str) -> Option<&'static str> {
    let (set, rest) = match (path.strip_prefix("/counter/"), path.strip_prefix("/set/")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return None,
    };
    let member = match rest.split('/').count() {
        1 => false,
        2 if set => true,
        _ => return Some("other"),
    };
    let read = *method == Method::GET || *method == Method::HEAD;
    Some(match (set, member) {
        (false, _) if read => "counter",
        (false, _) if *method == Method::POST => "incr",
        (true, false) if read => "smembers",
        (true, true) if *method == Method::PUT => "sadd",
        (true, true) if *method == Method::DELETE => "srem",
        (_, false) if *method == Method::DELETE => "del",
        _ => "other",
    })
}

/// `?by=` (default 1, negative to decrement), `?w=`, `?pw=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IncrQuery {
    #[serde(default = "one")]
    pub by: i64,
    pub w: Option<usize>,
    pub pw: Option<usize>,
}

fn one() -> i64 {
    1
}

/// `?w=` and `?pw=` on set updates and deletes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateQuorum {
    pub w: Option<usize>,
    pub pw: Option<usize>,
}

#[derive(Serialize)]
struct MembersJson {
    /// In byte order, as `SMEMBERS` answers.
    members: Vec<String>,
    /// Members that are not UTF-8, base64 (standard alphabet); left out
    /// when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    binary_members: Vec<String>,
}

/// `GET /counter/{key}`: `{"value": n}`. A string holding an integer (a
/// Redis `SET k 10`) reads as that integer, as `INCR` would count on it;
/// `404` when the key holds nothing, `409` for a set or a string that is
/// not an integer.
async fn read_counter(
    State(api): State<Api>,
    key: Result<Path<String>, PathRejection>,
    quorum: Result<Query<ReadQuorum>, QueryRejection>,
) -> Result<Response, ApiError> {
    let key = typed_key(&api, key)?;
    let q = parse_query(quorum)?;
    let value = match read(&api, key, q).await? {
        None => return Ok(not_found()),
        Some(Value::Counter(counter)) => counter.value(),
        Some(Value::String(text)) => crdt::parse_integer(&text).map_err(refused)?,
        // A set, or any other type.
        Some(_) => return Err(refused(CrdtError::WrongType)),
    };
    Ok(counted("value", value))
}

/// `POST /counter/{key}?by=N`: `{"value": n}`, the value after adding N.
async fn incr(
    State(api): State<Api>,
    key: Result<Path<String>, PathRejection>,
    query: Result<Query<IncrQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = typed_key(&api, key)?;
    let q = parse_query(query)?;
    no_body(&body, "the increment goes in ?by=")?;
    let value = update(&api, key, Update::IncrBy(q.by), q.w, q.pw).await?;
    Ok(counted("value", value))
}

/// `GET /set/{key}`: `{"members": [...]}`; `404` when the key holds
/// nothing (or a set emptied by removes), `409` for a string or counter.
async fn read_set(
    State(api): State<Api>,
    key: Result<Path<String>, PathRejection>,
    quorum: Result<Query<ReadQuorum>, QueryRejection>,
) -> Result<Response, ApiError> {
    let key = typed_key(&api, key)?;
    let q = parse_query(quorum)?;
    let set = match read(&api, key, q).await? {
        None => return Ok(not_found()),
        Some(Value::Set(set)) => set,
        Some(_) => return Err(refused(CrdtError::WrongType)),
    };
    let mut json = MembersJson {
        members: Vec::with_capacity(set.len()),
        binary_members: Vec::new(),
    };
    for member in set.iter() {
        match std::str::from_utf8(member) {
            Ok(text) => json.members.push(text.to_string()),
            Err(_) => json.binary_members.push(BASE64.encode(member)),
        }
    }
    Ok(Json(json).into_response())
}

/// `PUT /set/{key}/{member}`: `{"added": 1}`, or `0` when it was a member.
async fn sadd(
    State(api): State<Api>,
    path: Result<Path<(String, String)>, PathRejection>,
    quorum: Result<Query<UpdateQuorum>, QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (key, member) = key_and_member(&api, path)?;
    let q = parse_query(quorum)?;
    no_body(&body, "the member is the last path segment")?;
    let added = update(&api, key, Update::SAdd(vec![member]), q.w, q.pw).await?;
    Ok(counted("added", added))
}

/// `DELETE /set/{key}/{member}`: `{"removed": 1}`, or `0` when it was not
/// a member.
async fn srem(
    State(api): State<Api>,
    path: Result<Path<(String, String)>, PathRejection>,
    quorum: Result<Query<UpdateQuorum>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (key, member) = key_and_member(&api, path)?;
    let q = parse_query(quorum)?;
    let removed = update(&api, key, Update::SRem(vec![member]), q.w, q.pw).await?;
    Ok(counted("removed", removed))
}

/// `DELETE /set/{key}` and `DELETE /counter/{key}`: Redis's `DEL` — a
/// set's observed members are removed (a concurrent add survives), a
/// counter or string gets a tombstone, whatever the path's type says.
/// `{"deleted": 1}`, or `0` when the key held nothing.
pub(crate) async fn delete_key(
    State(api): State<Api>,
    key: Result<Path<String>, PathRejection>,
    quorum: Result<Query<UpdateQuorum>, QueryRejection>,
) -> Result<Response, ApiError> {
    let key = typed_key(&api, key)?;
    let q = parse_query(quorum)?;
    let deleted = update(&api, key, Update::Del, q.w, q.pw).await?;
    Ok(counted("deleted", deleted))
}

/// The key's value as the siblings an R quorum holds resolve; `None` when
/// it holds none (or a set emptied by removes).
pub(crate) async fn read(
    api: &Api,
    key: Vec<u8>,
    q: ReadQuorum,
) -> Result<Option<Value>, ApiError> {
    let op = ClientOp::Get {
        key,
        r: q.r,
        pr: q.pr,
    };
    let siblings = match api.node.request(op, api.request_limit).await? {
        ClientReply::Value(set) => set,
        _ => return Err(unexpected_reply()),
    };
    let resolved = crdt::resolve(&siblings)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(resolved.map(|(value, _)| value).filter(Value::exists))
}

/// A CRDT update of `key`, applied by its coordinator; its integer reply.
pub(crate) async fn update(
    api: &Api,
    key: Vec<u8>,
    update: Update,
    w: Option<usize>,
    pw: Option<usize>,
) -> Result<i64, ApiError> {
    let op = ClientOp::Update { key, update, w, pw };
    match api.node.request(op, api.request_limit).await? {
        ClientReply::Updated(crdt::Reply::Integer(reply)) => Ok(reply),
        _ => Err(unexpected_reply()),
    }
}

pub(crate) fn refused(e: CrdtError) -> ApiError {
    ClientError::from(e).into()
}

/// The internal key of a counter or set key, refused when the keyspace
/// prefix would take it over the node's key limit.
pub(crate) fn typed_key(
    api: &Api,
    key: Result<Path<String>, PathRejection>,
) -> Result<Vec<u8>, ApiError> {
    let Path(key) = key.map_err(not_text)?;
    internal_key(api, key)
}

pub(crate) fn key_and_member(
    api: &Api,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(Vec<u8>, Vec<u8>), ApiError> {
    let Path((key, member)) = path.map_err(not_text)?;
    Ok((internal_key(api, key)?, member.into_bytes()))
}

fn internal_key(api: &Api, key: String) -> Result<Vec<u8>, ApiError> {
    let limit = api.max_key_bytes - LWW_PREFIX.len();
    if key.len() > limit {
        return Err(bad_request(format!(
            "key is {} bytes; counter and set keys may be at most {limit} bytes (max_key_bytes \
             {} minus the {}-byte keyspace prefix)",
            key.len(),
            api.max_key_bytes,
            LWW_PREFIX.len()
        )));
    }
    Ok(lww_key(key.as_bytes()))
}

fn not_text(e: PathRejection) -> ApiError {
    bad_request(format!(
        "keys and members are UTF-8 text, one percent-encoded path segment each ({})",
        e.body_text()
    ))
}

/// A request's query, refused with `400` and the reason when it does not
/// parse.
pub(crate) fn parse_query<T>(parsed: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    parsed
        .map(|Query(q)| q)
        .map_err(|e| bad_request(e.body_text()))
}

/// An update's answer: `{"<name>": n}` (`added`, `removed`, `value`, …).
pub(crate) fn counted(name: &str, n: i64) -> Response {
    let body = serde_json::Map::from_iter([(name.to_string(), n.into())]);
    Json(body).into_response()
}

/// Refuse a body: these requests carry everything in the path and query,
/// and a body (`POST /counter/k` with `5`) would be silently ignored.
pub(crate) fn no_body(body: &Bytes, hint: &str) -> Result<(), ApiError> {
    if body.is_empty() {
        return Ok(());
    }
    Err(bad_request(format!("this request takes no body: {hint}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_is_counted_under_a_fixed_op() {
        let cases = [
            (Method::GET, "/counter/hits", Some("counter")),
            (Method::HEAD, "/counter/hits", Some("counter")),
            (Method::POST, "/counter/hits", Some("incr")),
            (Method::DELETE, "/counter/hits", Some("del")),
            (Method::PUT, "/counter/hits", Some("other")),
            (Method::POST, "/counter/a/b", Some("other")),
            (Method::GET, "/set/cart", Some("smembers")),
            (Method::DELETE, "/set/cart", Some("del")),
            (Method::PUT, "/set/cart/apple", Some("sadd")),
            (Method::DELETE, "/set/cart/apple", Some("srem")),
            (Method::GET, "/set/cart/apple", Some("other")),
            (Method::PUT, "/set/cart", Some("other")),
            (Method::PUT, "/set/a/b/c", Some("other")),
            (Method::GET, "/kv/counter/x", None),
            (Method::GET, "/counter", None),
            (Method::GET, "/settings", None),
        ];
        for (method, path, op) in cases {
            assert_eq!(op_of(&method, path), op, "{method} {path}");
            if let Some(op) = op {
                assert!(op == "other" || OPS.contains(&op), "{op} is declared");
            }
        }
    }
}
