//! The HTTP API: `/kv/{key}` for data, `/counter/{key}` and `/set/{key}`
//! for the Redis keyspace's counters and sets ([`crate::http_crdt`]),
//! `/status` and `/metrics` for
//! operators, `/ring` for clients, `/health/live` and `/health/ready` for
//! probes, the web console at `/ui` ([`crate::console`]); who may call
//! what is [`crate::auth`]'s rule.
//!
//! Siblings are first-class: one live version is `200` with the raw bytes,
//! several are `300 Multiple Choices` with every version in JSON, and the
//! causal context travels in the `X-Ringkv-Context` header both ways.

use crate::auth::{self, Access};
use crate::console;
use crate::driver::{fingerprint_text, NodeHandle, NodeReport};
use crate::http_accept::{self, Form};
use crate::http_buckets::Bucket;
use crate::metrics::{Frontend, Metrics, Outcome, Scrape};
use crate::shed::{self, Held, Limits, ShedReport, Shedding};
use crate::transport::Transport;
use crate::{http_conditional, http_crdt, http_hash};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ringkv_core::bucket::{self, BucketProps};
use ringkv_core::context;
use ringkv_core::gossip::RemoveRefusal;
use ringkv_core::keyspace::{self, ConflictPolicy};
use ringkv_core::message::{ClientError, ClientOp, ClientReply, Message};
use ringkv_core::ring_view::RingView;
use ringkv_core::siblings::{Sibling, SiblingSet};
use ringkv_core::version::CausalContext;
use ringkv_core::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const CONTEXT_HEADER: &str = "x-ringkv-context";
/// On every `/kv` answer: the fingerprint of the answering node's ring, so
/// a client routing by its own copy of the ring notices when it is stale.
pub const RING_HEADER: &str = "x-ringkv-ring";

/// Everything the handlers share.
#[derive(Clone)]
pub struct Api {
    pub node: NodeHandle,
    pub transport: Transport<Message>,
    pub cluster: String,
    /// Safety net on top of the node's own quorum timeouts.
    pub request_limit: Duration,
    pub max_value_bytes: usize,
    /// The node's key limit (counter and set keys lose two bytes of it to
    /// the keyspace prefix).
    pub max_key_bytes: usize,
    pub fault_injection: bool,
    /// Who may do what (see [`crate::auth`]).
    pub access: Arc<Access>,
    pub metrics: Arc<Metrics>,
    /// When the node started, seconds since the Unix epoch.
    pub started: f64,
    /// The node's load limits, and what it shed.
    pub limits: Limits,
    pub shedding: Arc<Shedding>,
}

/// The operations `/kv` requests are counted under.
pub const KV_OPS: [&str; 4] = ["get", "head", "put", "delete"];

/// The API's routes. Data requests (`/kv`, `/counter`, `/set`) are
/// limited to `http_requests` at once (see [`shed::http`]); the others —
/// status, admin, health — are few, bounded by the connection limit, and
/// must answer while data requests are being shed.
pub fn router(api: Api) -> Router {
    let body_limit = api.max_value_bytes + 1;
    let kv = Router::new()
        .route("/kv/{*key}", get(get_key).put(put_key).delete(delete_key))
        .route("/kv/", any(empty_key))
        .route(
            "/buckets/{bucket}/keys/{*key}",
            get(get_bucket_key)
                .put(put_bucket_key)
                .delete(delete_bucket_key),
        )
        .merge(
            http_crdt::routes()
                .merge(http_hash::routes())
                .merge(crate::http_keys::routes())
                .layer(middleware::from_fn(refuse_ttl)),
        )
        .layer(middleware::map_response_with_state(
            api.clone(),
            ring_header,
        ));
    let kv = shed::http::limit_requests(kv, api.limits.http_requests, api.shedding.clone());
    Router::new()
        .merge(kv)
        .route("/status", get(status))
        .route("/ring", get(ring))
        .route("/metrics", get(metrics))
        .route("/admin/links/{peer}/{action}", post(link_fault))
        .route("/admin/repair", post(repair))
        .route("/admin/replica/{*key}", get(read_replica))
        .route("/admin/leave", post(leave))
        .route("/admin/remove/{node}", post(remove))
        .merge(crate::http_buckets::routes())
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/openapi.json", get(crate::openapi::serve))
        .merge(console::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            (body_limit, api.limits.http_body_timeout()),
            read_body_within,
        ))
        .layer(middleware::from_fn_with_state(body_limit, refuse_declared))
        // A refused request reaches no handler.
        .layer(middleware::from_fn_with_state(
            api.access.clone(),
            auth::http::authorize,
        ))
        // Outermost: refusals are counted too.
        .layer(middleware::from_fn_with_state(
            api.metrics.clone(),
            count_kv,
        ))
        .with_state(api)
}

/// `404` for a path no route serves, in one sentence.
async fn no_route(uri: axum::http::Uri) -> ApiError {
    let path = uri.path();
    let message = format!("no endpoint at {path}: GET /openapi.json lists them");
    ApiError::new(StatusCode::NOT_FOUND, message)
}

/// `405` for a method a path does not serve (the router adds `Allow`).
async fn not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    let message = format!("{method} is not served at {}", uri.path());
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, message)
}

/// `/kv/` names no key.
async fn empty_key(State(api): State<Api>) -> ApiError {
    let limit = api.max_key_bytes;
    bad_request(format!("key must be 1 to {limit} bytes, got 0"))
}

/// `413` at once for a request whose `Content-Length` is over `limit`
/// (the body limit: one byte more than a value may have, so that a value
/// one byte too long reaches its handler and is refused in its terms).
/// `DefaultBodyLimit` refuses a body only once it has read past the
/// limit, so a client that declared terabytes and sent nothing held its
/// connection and a `/kv` slot waiting for the body. A body sent without
/// a length (chunked) is cut where it passes the limit, by
/// [`read_body_within`].
async fn refuse_declared(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let declared = axum::body::HttpBody::size_hint(request.body()).lower();
    if declared > limit as u64 {
        let most = limit.saturating_sub(1);
        let message = format!(
            "the request declares a body of {declared} bytes, more than the {most} bytes \
             this node takes"
        );
        return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
    }
    next.run(request).await
}

/// Read a request's body whole (at most `limit` bytes) within `within` of
/// its head, before its handler — and before a data request takes one of
/// the `http_requests` slots: a body that stalls gets `408` and its
/// connection closed, rather than holding a slot for ever (1,024 stalled
/// `PUT`s locked every client out of `/kv`). A body over `limit` (sent
/// without a length: a declared one is refused by [`refuse_declared`])
/// gets `413` in this node's words, not axum's.
async fn read_body_within(
    State((limit, within)): State<(usize, std::time::Duration)>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(within, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) if is_too_long(&e) => {
            let most = limit.saturating_sub(1);
            let message = format!("the request body is more than the {most} bytes this node takes");
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
        }
        Ok(Err(e)) => {
            let message = format!("the request body could not be read: {e}");
            return ApiError::new(StatusCode::BAD_REQUEST, message).into_response();
        }
        Err(_) => {
            let message = format!(
                "the request body did not arrive within {} ms of its head",
                within.as_millis()
            );
            let mut response = ApiError::new(StatusCode::REQUEST_TIMEOUT, message).into_response();
            let close = axum::http::HeaderValue::from_static("close");
            response
                .headers_mut()
                .insert(axum::http::header::CONNECTION, close);
            return response;
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// Whether reading a body failed on its length limit.
fn is_too_long(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Liveness for probes and load balancers: the process serves HTTP. Open
/// to anyone, and says nothing else.
async fn live() -> &'static str {
    "ok\n"
}

/// Readiness for load balancers and orchestrators: `200 ready` when the
/// node serves its share (see [`ringkv_core::node::Node::readiness`]),
/// otherwise `503` and why not, in one sentence. Open to anyone.
async fn ready(State(api): State<Api>) -> Response {
    match api.node.readiness().await {
        Some(Ok(())) => "ready\n".into_response(),
        Some(Err(reason)) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
        None => shutting_down().into_response(),
    }
}

/// The members, vnodes, N and fingerprints a client routes by; cheap
/// (no per-member shares, no store access), unlike `/status`.
async fn ring(State(api): State<Api>) -> Result<Json<RingView>, ApiError> {
    api.node
        .ring_view()
        .await
        .map(Json)
        .ok_or_else(shutting_down)
}

/// Prometheus' text exposition format (version 0.0.4); admin only.
async fn metrics(State(api): State<Api>) -> Result<Response, ApiError> {
    let report = api.node.report().await.ok_or_else(shutting_down)?;
    let scrape = Scrape {
        report: &report,
        transport: api.transport.counts(),
        queued: api.node.queued(),
        shedding: &api.shedding,
        cluster: &api.cluster,
        started: api.started,
    };
    let text = api.metrics.render(&scrape);
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

/// Count and time every data request (`/kv`, `/counter`, `/set`) by
/// operation and answer, refusals included.
async fn count_kv(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let op = if path.starts_with("/kv/") {
        KV_OPS
            .into_iter()
            .find(|op| request.method().as_str().eq_ignore_ascii_case(op))
            .unwrap_or("other")
    } else if let Some(op) = http_crdt::op_of(request.method(), path)
        .or_else(|| http_hash::op_of(request.method(), path))
    {
        op
    } else {
        return next.run(request).await;
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let outcome = if response.headers().contains_key(header::RETRY_AFTER) {
        Outcome::Overloaded
    } else if let Some(outcome) = response.extensions().get::<Outcome>() {
        // The node's own error class: a refused update (`409`, as Redis's
        // `WRONGTYPE`) is `invalid`, not a sibling `conflict`.
        *outcome
    } else {
        Outcome::of_http(response.status().as_u16())
    };
    metrics.request(Frontend::Http, op, outcome, started.elapsed());
    response
}

async fn ring_header(State(api): State<Api>, mut response: Response) -> Response {
    let text = fingerprint_text(api.node.ring_fingerprint());
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().insert(RING_HEADER, value);
    }
    response
}

/// `?r=` and `?pr=` on reads; anything else in the query is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadQuorum {
    pub r: Option<usize>,
    /// Replies that must come from the key's real preference list (Riak's
    /// PR); without it, stand-ins holding hints may answer in their place.
    pub pr: Option<usize>,
}

/// `?w=` and `?pw=` on `/kv` writes, and `?r=` and `?pr=` for the read a
/// write makes first — a delete without a context, a conditional write
/// (Riak's delete takes them so); anything else in the query is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteQuery {
    r: Option<usize>,
    pr: Option<usize>,
    w: Option<usize>,
    /// Acks that must come from the key's real preference list (Riak's PW).
    pw: Option<usize>,
    /// Seconds the value lives (PUT only; `X-Ringkv-TTL` says the same),
    /// as sent: parsed by [`WriteQuery::ttl_ms`] for a clear sentence.
    ttl: Option<String>,
}

/// The longest `?ttl=`, seconds.
const MAX_TTL_SECONDS: u64 = ringkv_core::siblings::MAX_TTL_MS / 1000;
/// The header that gives a PUT's time to live, in seconds.
const TTL_HEADER: &str = "x-ringkv-ttl";
/// The header that says when a read's value expires (ms since the Unix
/// epoch, by the clock of the node that wrote it).
const EXPIRES_HEADER: &str = "x-ringkv-expires-at";

impl WriteQuery {
    /// The bucket's quorums where the request gives none.
    /// A bucket's PW applies only within the request's own W.
    fn with_defaults(self, props: &BucketProps) -> WriteQuery {
        let within_w = |pw: &usize| self.w.is_none_or(|w| *pw <= w);
        WriteQuery {
            r: self.r.or(props.r),
            w: self.w.or(props.w),
            pw: self.pw.or(props.pw.filter(within_w)),
            ..self
        }
    }

    /// A PUT's time to live in ms, from `?ttl=` or `X-Ringkv-TTL` (whole
    /// seconds, at least 1); 400 when it does not parse, is 0, or the two
    /// disagree.
    fn ttl_ms(&self, headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
        if headers.get_all(TTL_HEADER).iter().count() > 1 {
            return Err(bad_request(
                "X-Ringkv-TTL is given more than once; give it once",
            ));
        }
        // Digits past `u64` are simply too many seconds (told as such below).
        let seconds = |text: &str, what: &str| {
            let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
            digits
                .then(|| text.parse::<u64>().unwrap_or(u64::MAX))
                .ok_or_else(|| bad_request(format!("{what} must be a whole number of seconds")))
        };
        let query = self.ttl.as_deref().map(|t| seconds(t, "ttl")).transpose()?;
        let header = match headers.get(TTL_HEADER) {
            None => None,
            Some(v) => Some(seconds(v.to_str().unwrap_or("").trim(), "X-Ringkv-TTL")?),
        };
        let ttl = match (query, header) {
            (Some(a), Some(b)) if a != b => {
                return Err(bad_request("?ttl= and X-Ringkv-TTL disagree; give one"))
            }
            (a, b) => a.or(b),
        };
        match ttl {
            Some(0) => Err(bad_request(
                "ttl must be at least 1 second; to remove a value now, DELETE it",
            )),
            Some(seconds) if seconds > MAX_TTL_SECONDS => Err(bad_request(format!(
                "ttl must be at most {MAX_TTL_SECONDS} seconds (100 years)"
            ))),
            ttl => Ok(ttl.map(|seconds| seconds * 1000)),
        }
    }

    /// The context a `/kv` write of `key` carries: the client's
    /// `X-Ringkv-Context`, or what its preconditions' read settled on
    /// (see [`http_conditional`]); `412` when one fails.
    async fn write_context(
        &self,
        api: &Api,
        key: &[u8],
        (preconditions, client_context): CausalHeaders,
    ) -> Result<Option<CausalContext>, ApiError> {
        let read = http_conditional::CheckRead {
            r: self.r,
            pr: self.pr,
        };
        preconditions
            .check_write(api, key, read, client_context)
            .await
    }
}

/// A write's preconditions and `X-Ringkv-Context`, parsed once.
type CausalHeaders = (http_conditional::Preconditions, Option<CausalContext>);

/// `400` when a write's preconditions or context do not parse.
fn causal_headers(headers: &HeaderMap) -> Result<CausalHeaders, ApiError> {
    Ok((http_conditional::of(headers)?, context_from(headers)?))
}

/// One version as JSON (the 300 body and the `Accept: application/json` form).
#[derive(Serialize, Deserialize)]
pub struct SiblingJson {
    /// Base64 (standard alphabet) of the value bytes.
    pub value: String,
    /// Coordinator wall-clock milliseconds of the write.
    pub timestamp: u64,
    /// The write event, `node:counter`.
    pub dot: String,
    /// When the value expires, ms since the Unix epoch (absent: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

#[derive(Serialize, Deserialize)]
pub struct SiblingsJson {
    pub context: String,
    pub siblings: Vec<SiblingJson>,
}

/// A user-facing error: a status and one sentence.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    /// The node shed the request: a `503` with `Retry-After` (see
    /// [`shed::http`]), which is how a client tells it from a quorum that
    /// failed — the operation was not started at all.
    overloaded: bool,
    /// The request metrics' class of a node's error (see `count_kv`).
    outcome: Option<Outcome>,
}

impl ApiError {
    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            overloaded: false,
            outcome: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = if self.overloaded {
            shed::http::overloaded(&self.message)
        } else {
            (self.status, format!("{}\n", self.message)).into_response()
        };
        if let Some(outcome) = self.outcome {
            response.extensions_mut().insert(outcome);
        }
        response
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        let overloaded = matches!(e, ClientError::Overloaded { .. });
        let outcome = Some(Outcome::of_error(&e));
        let status = match e {
            ClientError::Invalid(_) => StatusCode::BAD_REQUEST,
            ClientError::Conflict(_) | ClientError::Refused(_) => StatusCode::CONFLICT,
            ClientError::Indeterminate { .. } => StatusCode::GATEWAY_TIMEOUT,
            ClientError::Unavailable { .. }
            | ClientError::ReadOnly { .. }
            | ClientError::TooLate { .. }
            | ClientError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ClientError::Storage { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match e {
            // The Redis error line: its `ERR ` prefix means nothing here
            // (`WRONGTYPE` is kept: it names the refusal).
            ClientError::Refused(line) => match line.strip_prefix("ERR ") {
                Some(sentence) => sentence.to_string(),
                None => line,
            },
            e => e.to_string(),
        };
        ApiError {
            overloaded,
            outcome,
            ..ApiError::new(status, message)
        }
    }
}

/// The node thread is gone (the process is stopping).
pub(crate) fn shutting_down() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "node is shutting down")
}

/// The node answered a read with a write's reply or the reverse: a bug on
/// our side, never the client's.
pub(crate) fn unexpected_reply() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the node gave an unexpected kind of reply",
    )
}

pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message.into())
}

/// `404` for a counter or set key that holds nothing (`/kv` answers its
/// own, with a context).
pub(crate) fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

async fn get_key(
    State(api): State<Api>,
    Path(key): Path<String>,
    quorum: Result<Query<ReadQuorum>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bucket = Bucket::resolve(&api, bucket::DEFAULT)?;
    get_in(api, bucket, key, quorum, headers).await
}

async fn get_bucket_key(
    State(api): State<Api>,
    Path((bucket, key)): Path<(String, String)>,
    quorum: Result<Query<ReadQuorum>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bucket = Bucket::resolve(&api, &bucket)?;
    get_in(api, bucket, key, quorum, headers).await
}

/// A read of `key` in `bucket`: the bucket's R and PR unless the query
/// gives them; a last-write-wins bucket shows its winner alone.
async fn get_in(
    api: Api,
    bucket: Bucket,
    key: String,
    quorum: Result<Query<ReadQuorum>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    bucket.check_plain()?;
    let Query(q) = quorum.map_err(|e| bad_request(e.body_text()))?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let json = match http_accept::negotiate(accept) {
        Form::Raw => false,
        Form::Json => true,
        Form::Neither => {
            let refusal = ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "a value is served as its raw bytes (any media type but application/json) \
                 or as application/json, and the Accept header takes neither",
            );
            return Ok(vary_accept(refusal.into_response()));
        }
    };
    let preconditions = http_conditional::of(&headers)?;
    let op = ClientOp::Get {
        key: bucket.key(&api, key)?,
        r: q.r.or(bucket.props.r),
        pr: q.pr,
    };
    let siblings = match api.node.request(op, api.request_limit).await? {
        ClientReply::Value(set) if bucket.props.policy == ConflictPolicy::Lww => winner_only(&set),
        ClientReply::Value(set) => set,
        _ => return Err(unexpected_reply()),
    };
    // Siblings are only ever answered in JSON (a 300).
    let json = json || siblings.live().nth(1).is_some();
    if preconditions.check_read(&siblings, json)? {
        let ctx = siblings.context();
        let tag = (header::ETAG, http_conditional::etag(&siblings, json));
        let response = (StatusCode::NOT_MODIFIED, context_headers(&ctx), [tag]).into_response();
        return Ok(vary_accept(response));
    }
    Ok(render(&siblings, json))
}

/// A last-write-wins key as its reader sees it: the versions its winner
/// beat hidden (tombstones of the same dots, so the context still covers
/// them), nothing live when the winner is a tombstone.
fn winner_only(set: &SiblingSet) -> SiblingSet {
    match keyspace::lww_winner(set) {
        Some(winner) => {
            let dot = winner.dot.clone();
            set.hiding(|s| s.dot != dot)
        }
        None => set.clone(),
    }
}

/// A TTL is for `PUT /kv` only: on the Redis keyspace's routes it is
/// refused rather than ignored (the key would never expire).
async fn refuse_ttl(request: Request, next: Next) -> Response {
    if request.headers().contains_key(TTL_HEADER) {
        let message = "X-Ringkv-TTL applies to PUT /kv only; give a Redis key a TTL with EXPIRE";
        return bad_request(message).into_response();
    }
    next.run(request).await
}

/// The answer depends on `Accept` (RFC 9110 §12.5.5).
fn vary_accept(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

async fn put_key(
    State(api): State<Api>,
    Path(key): Path<String>,
    quorum: Result<Query<WriteQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let bucket = Bucket::resolve(&api, bucket::DEFAULT)?;
    put_in(api, bucket, key, quorum, headers, body).await
}

async fn put_bucket_key(
    State(api): State<Api>,
    Path((bucket, key)): Path<(String, String)>,
    quorum: Result<Query<WriteQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let bucket = Bucket::resolve(&api, &bucket)?;
    put_in(api, bucket, key, quorum, headers, body).await
}

/// A write of `key` in `bucket`: the bucket's W, PW, R (for a
/// precondition's read), TTL and value limit unless the request gives its own.
async fn put_in(
    api: Api,
    bucket: Bucket,
    key: String,
    quorum: Result<Query<WriteQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    bucket.check_plain()?;
    let Query(q) = quorum.map_err(|e| bad_request(e.body_text()))?;
    let q = q.with_defaults(&bucket.props);
    let key = bucket.key(&api, key)?;
    // A request that is wrong in itself is a 400 whatever its size.
    let ttl_ms = q.ttl_ms(&headers)?.or(bucket.default_ttl_ms());
    let causal = causal_headers(&headers)?;
    let limit = bucket.max_value_bytes(&api);
    if body.len() > limit {
        let message = match limit == api.max_value_bytes {
            true => format!("value must be at most {limit} bytes, got {}", body.len()),
            false => format!(
                "value must be at most {limit} bytes in bucket {}, got {}",
                bucket.name,
                body.len()
            ),
        };
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message));
    }
    let context = q.write_context(&api, &key, causal).await?;
    let op = ClientOp::Put {
        key,
        value: body.to_vec(),
        context: context.unwrap_or_default(),
        w: q.w,
        pw: q.pw,
        ttl_ms,
    };
    written(api.node.request(op, api.request_limit).await?)
}

async fn delete_key(
    State(api): State<Api>,
    Path(key): Path<String>,
    quorum: Result<Query<WriteQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bucket = Bucket::resolve(&api, bucket::DEFAULT)?;
    delete_in(api, bucket, key, quorum, headers).await
}

async fn delete_bucket_key(
    State(api): State<Api>,
    Path((bucket, key)): Path<(String, String)>,
    quorum: Result<Query<WriteQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bucket = Bucket::resolve(&api, &bucket)?;
    delete_in(api, bucket, key, quorum, headers).await
}

async fn delete_in(
    api: Api,
    bucket: Bucket,
    key: String,
    quorum: Result<Query<WriteQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    bucket.check_plain()?;
    let Query(q) = quorum.map_err(|e| bad_request(e.body_text()))?;
    let q = q.with_defaults(&bucket.props);
    let key = bucket.key(&api, key)?;
    if q.ttl.is_some() || headers.contains_key(TTL_HEADER) {
        return Err(bad_request("a DELETE takes no ttl"));
    }
    let context = q
        .write_context(&api, &key, causal_headers(&headers)?)
        .await?;
    let op = ClientOp::Delete {
        context,
        key,
        r: q.r,
        pr: q.pr,
        w: q.w,
        pw: q.pw,
    };
    written(api.node.request(op, api.request_limit).await?)
}

/// `204 No Content` carrying the next context: the one the client sent
/// plus the new version's dot, and nothing else the coordinator holds.
fn written(reply: ClientReply) -> Result<Response, ApiError> {
    let ClientReply::Written { context, .. } = reply else {
        return Err(unexpected_reply());
    };
    Ok((StatusCode::NO_CONTENT, context_headers(&context)).into_response())
}

fn context_from(headers: &HeaderMap) -> Result<Option<CausalContext>, ApiError> {
    let Some(value) = headers.get(CONTEXT_HEADER) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| bad_request("invalid causal context: not ASCII"))?;
    context::decode(text)
        .map(Some)
        .map_err(|e| bad_request(e.to_string()))
}

fn context_headers(clock: &CausalContext) -> [(header::HeaderName, HeaderValue); 1] {
    let value = HeaderValue::from_str(&context::encode(clock))
        .unwrap_or_else(|_| HeaderValue::from_static(""));
    [(header::HeaderName::from_static(CONTEXT_HEADER), value)]
}

/// 404 when nothing live remains, 200 raw bytes for one version, 300 JSON
/// for siblings (or 200/300 JSON whenever JSON is asked for; `json` is
/// true whenever there are siblings). Every answer carries the context, so
/// even a write over a tombstone can supersede it, and `Vary: Accept`; a
/// live one its entity tag (see [`http_conditional`]).
fn render(siblings: &SiblingSet, json: bool) -> Response {
    let ctx = siblings.context();
    let live: Vec<_> = siblings.live().collect();
    debug_assert!(json || live.len() <= 1, "siblings are answered in JSON");
    let mut response = vary_accept(render_versions(&ctx, &live, json));
    if !live.is_empty() {
        let tag = http_conditional::etag(siblings, json);
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

/// The body and status of [`render`].
fn render_versions(ctx: &CausalContext, live: &[&Sibling], json: bool) -> Response {
    let headers = context_headers(ctx);
    match live {
        [] => (StatusCode::NOT_FOUND, headers, "not found\n").into_response(),
        [one] if !json => {
            let body = one.value.clone().unwrap_or_default();
            let mut response = (StatusCode::OK, headers, body).into_response();
            if let Some(at) = one.expires_at {
                let name = header::HeaderName::from_static(EXPIRES_HEADER);
                response.headers_mut().insert(name, HeaderValue::from(at));
            }
            response
        }
        _ => {
            let status = if live.len() > 1 {
                StatusCode::MULTIPLE_CHOICES
            } else {
                StatusCode::OK
            };
            let body = SiblingsJson {
                context: context::encode(ctx),
                siblings: live
                    .iter()
                    .map(|s| SiblingJson {
                        value: BASE64.encode(s.value.as_deref().unwrap_or_default()),
                        timestamp: s.timestamp,
                        dot: format!("{}:{}", s.dot.node, s.dot.counter),
                        expires_at: s.expires_at,
                    })
                    .collect(),
            };
            (status, headers, Json(body)).into_response()
        }
    }
}

/// The `/status` document (also in the web console's `/ui/data`).
#[derive(Serialize)]
pub struct StatusJson {
    cluster: String,
    #[serde(flatten)]
    node: NodeReport,
    inter_node_connections_accepted: u64,
    load: LoadReport,
}

/// `load` in `/status`: the limits, what the bounded queues hold now
/// (operations in flight are `in_flight` at the top level), and what was
/// shed, by queue and cause.
#[derive(Serialize)]
struct LoadReport {
    limits: Limits,
    node_queue: Held,
    /// Per peer: frames queued or being written, and their bytes.
    peer_queues: BTreeMap<String, Held>,
    shed: ShedReport,
}

/// This node's `/status` document; `None` once the node thread is gone.
pub(crate) async fn status_document(api: &Api) -> Option<StatusJson> {
    let node = api.node.report().await?;
    let load = LoadReport {
        limits: api.limits.clone(),
        node_queue: api.node.queued(),
        peer_queues: api
            .transport
            .queued()
            .into_iter()
            .map(|(peer, held)| (peer.to_string(), held))
            .collect(),
        shed: api.shedding.report(),
    };
    Some(StatusJson {
        cluster: api.cluster.clone(),
        node,
        inter_node_connections_accepted: api.transport.accepted_connections(),
        load,
    })
}

async fn status(State(api): State<Api>) -> Result<Json<StatusJson>, ApiError> {
    let document = status_document(&api).await.ok_or_else(shutting_down)?;
    Ok(Json(document))
}

/// Test fault switch: `cut` silently drops all traffic with `peer`, `heal`
/// restores it. Refused unless the config enables fault injection.
async fn link_fault(
    State(api): State<Api>,
    Path((peer, action)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !api.fault_injection {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "fault injection is disabled in this node's config",
        ));
    }
    if !api.transport.knows(&NodeId::new(&peer)) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("unknown node {peer}"),
        ));
    }
    let blocked = match action.as_str() {
        "cut" => true,
        "heal" => false,
        _ => return Err(bad_request("action must be cut or heal")),
    };
    api.transport.set_blocked(&NodeId::new(peer), blocked);
    Ok(StatusCode::NO_CONTENT)
}

/// Start leaving the cluster: the new owners fetch this node's ranges, then
/// the node marks itself left and its process stops. Progress shows in
/// `/status` (`handoff` on the new owners, this node's member status).
async fn leave(State(api): State<Api>) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    api.node.leave().await.ok_or_else(shutting_down)?;
    let body = serde_json::json!({ "status": "leaving" });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveQuery {
    /// Remove the member even though it is up.
    #[serde(default)]
    force: bool,
}

/// Remove a member that will never come back (`?force=true`: even if it is
/// up): `202 {"node", "status": "removing"|"removed"}`; `404` for an
/// unknown member, `409` with the reason for one that is up, left or
/// removed already, or this node itself. Progress shows in `/status` (the
/// member's status, `handoff` on the new owners).
async fn remove(
    State(api): State<Api>,
    Path(node): Path<String>,
    Query(query): Query<RemoveQuery>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    check_node_id(&node)?;
    let removed = api
        .node
        .remove(NodeId::new(&node), query.force)
        .await
        .ok_or_else(shutting_down)?;
    match removed {
        Ok(status) => {
            let status = format!("{status:?}").to_lowercase();
            let body = serde_json::json!({ "node": node, "status": status });
            Ok((StatusCode::ACCEPTED, Json(body)))
        }
        Err(refusal @ RemoveRefusal::Unknown(_)) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, refusal.to_string()))
        }
        Err(refusal) => Err(ApiError::new(StatusCode::CONFLICT, refusal.to_string())),
    }
}

/// Node ids are short printable names (they are echoed in answers and
/// logs): anything else is refused before it is looked up.
fn check_node_id(id: &str) -> Result<(), ApiError> {
    const MAX: usize = 256;
    if id.len() <= MAX && !id.is_empty() && !id.chars().any(char::is_control) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("a node id is 1 to {MAX} bytes of printable characters"),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepairQuery {
    /// Repair only the range holding this token.
    token: Option<u64>,
    /// Rebuild the Merkle trees from disk first.
    #[serde(default)]
    rebuild: bool,
}

#[derive(Serialize, Deserialize)]
pub struct RepairStarted {
    pub exchanges: usize,
}

/// Start a full anti-entropy exchange of this node's ranges now; progress
/// shows in `/status` under `anti_entropy.repair`.
async fn repair(
    State(api): State<Api>,
    query: Result<Query<RepairQuery>, QueryRejection>,
) -> Result<Json<RepairStarted>, ApiError> {
    let Query(q) = query.map_err(|e| bad_request(e.body_text()))?;
    let exchanges = api
        .node
        .repair(q.token, q.rebuild)
        .await
        .ok_or_else(shutting_down)?;
    Ok(Json(RepairStarted { exchanges }))
}

/// This node's own copy of a key, without asking any other replica — to
/// inspect one replica (e.g. after anti-entropy): its full stored state as
/// JSON, every sibling with its dot, context, timestamp and value bytes,
/// tombstones included (`{"siblings": []}` when it holds nothing).
/// `?bucket=` on `/admin/replica/{key}`: whose key it is (default: a `/kv` key).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicaQuery {
    bucket: Option<String>,
}

async fn read_replica(
    State(api): State<Api>,
    Path(key): Path<String>,
    query: Result<Query<ReplicaQuery>, QueryRejection>,
) -> Result<Json<SiblingSet>, ApiError> {
    let Query(q) = query.map_err(|e| bad_request(e.body_text()))?;
    let key = match q.bucket {
        Some(name) => Bucket::resolve(&api, &name)?.key(&api, key)?,
        None => key.into_bytes(),
    };
    let found = api.node.read_replica(key).await.ok_or_else(shutting_down)?;
    found
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))
}
