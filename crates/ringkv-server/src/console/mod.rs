//! The live web console every node serves: `GET /ui` (and `GET /`, which
//! redirects there) is one page — members and who suspects whom, the ring
//! as a circle of vnodes coloured by owner, handoff, anti-entropy and hint
//! progress, request rates and latency — that polls `GET /ui/data` every
//! second and redraws.
//!
//! Everything is in the binary (`include_str!` of the files next to this
//! one: plain HTML, CSS and JavaScript, no build step), and the page's
//! Content-Security-Policy lets it load nothing from anywhere else, so the
//! console works on a machine without internet access and an injected
//! script has nowhere to send what it reads. The page itself is open to
//! anyone; its data needs the read role (see [`crate::auth`]'s rules), and
//! the page asks for a token when the node says 401.

use crate::driver::now_ms;
use crate::http::{shutting_down, status_document, Api, ApiError, StatusJson};
use crate::metrics::RequestTotals;
use crate::status::VnodeAt;
use axum::extract::State;
use axum::http::{header, HeaderName};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

const PAGE: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// Same origin only, nothing inline: the page's own script and style, its
/// data from `/ui/data`, and the empty `data:` favicon.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The console's routes, merged into the HTTP API's router.
pub fn routes() -> Router<Api> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route(
            "/ui",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/ui/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/ui/console.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/ui/data", get(data))
}

/// One embedded file, revalidated on every load (a node upgraded in place
/// serves its own console, not a cached older one).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (HeaderName::from_static("x-frame-options"), "DENY"),
    ];
    (headers, body).into_response()
}

/// What one poll of the page reads, in one request.
#[derive(Serialize)]
struct ConsoleData {
    /// The node's wall clock, Unix milliseconds: the page divides counter
    /// deltas by its differences, so rates follow the node's time, not the
    /// browser's timer.
    now_ms: u64,
    /// Exactly `/status`'s document.
    status: StatusJson,
    /// Every vnode of the node's ring, in token order (see [`VnodeAt`]).
    vnodes: Vec<VnodeAt>,
    /// Client requests by front end and operation, running totals from
    /// the metrics recorder (see [`RequestTotals`]).
    requests: Vec<RequestTotals>,
}

/// `GET /ui/data`: `/status`, the vnodes and the request totals. Nothing
/// here scans the store; 503 once the node thread is gone.
async fn data(State(api): State<Api>) -> Result<Response, ApiError> {
    let (status, vnodes) = tokio::join!(status_document(&api), api.node.vnodes());
    let (Some(status), Some(vnodes)) = (status, vnodes) else {
        return Err(shutting_down());
    };
    let body = ConsoleData {
        now_ms: now_ms(),
        status,
        vnodes,
        requests: api.metrics.request_totals(),
    };
    let headers = [(header::CACHE_CONTROL, "no-store")];
    Ok((headers, Json(body)).into_response())
}
