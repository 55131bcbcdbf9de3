//! HTTP's share of load shedding: at most `http_requests` `/kv` requests
//! served at once — tower's `GlobalConcurrencyLimit` behind `LoadShed`, so
//! one more is answered at once instead of waiting for a slot — and at
//! most `http_connections` connections, one more answered and closed —
//! but for a small reserve kept for operators' requests (see
//! [`OPERATOR_RESERVE`]).
//!
//! Every overload answer is `503 Service Unavailable` with `Retry-After: 1`
//! (RFC 9110 §10.2.3: how long the client should wait) and one sentence.
//! A client that retries at once only adds to the load that caused it;
//! one second is the shortest the header can say.

use super::{Cause, Queue, Shedding};
use axum::error_handling::HandleErrorLayer;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::{BoxError, ServiceBuilder};

/// The `Retry-After` of every overload answer, in seconds.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Connections admitted beyond `http_connections` that may only ask for
/// [`for_operators`] paths (a request for anything else is answered
/// [`overloaded`]). The README promises that an overloaded node can still
/// be seen and stopped: clients that fill every slot — busy ones, or idle
/// ones until the header timeout closes them — must not lock out the
/// probe, `ringkv status` or `ringkv leave`. A reserve rather than
/// reading each connection's first request at the cap: the path is known
/// only once hyper has parsed the head, and a reserved connection is an
/// ordinary one whose requests are filtered. Operators' tools open a
/// connection or two each, so a few suffice; it is bounded so that the
/// reserve costs no more than a few ordinary connections (the header
/// timeout closes reserved connections that say nothing, too).
pub const OPERATOR_RESERVE: usize = 16;
/// Path prefixes an overloaded node still answers on reserved
/// connections: probes, status, metrics and the admin operations.
const OPERATOR_PATHS: [&str; 4] = ["/health/", "/status", "/metrics", "/admin/"];

/// Connections being turned away at once; beyond, one is just closed.
const MAX_REFUSALS: usize = 256;
/// How long a refused connection is read (and discarded) after its
/// answer, so that closing it does not reset the answer away.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// `503` with `Retry-After` and `message` as the body.
pub fn overloaded(message: &str) -> Response {
    let retry = [(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())];
    (
        StatusCode::SERVICE_UNAVAILABLE,
        retry,
        format!("{message}\n"),
    )
        .into_response()
}

/// `router` (its routes so far) serving at most `max` requests at once;
/// one more is answered [`overloaded`] at once and counted.
pub fn limit_requests<S>(router: Router<S>, max: usize, shedding: Arc<Shedding>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let refuse = move |_: BoxError| {
        let shedding = shedding.clone();
        async move {
            shedding.record(Queue::HttpRequests, Cause::Count);
            overloaded(&format!(
                "this node is serving {max} requests, its limit (http_requests); retry shortly"
            ))
        }
    };
    router.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(refuse))
            .layer(LoadShedLayer::new())
            .layer(GlobalConcurrencyLimitLayer::new(max)),
    )
}

/// Whether `path` is one an overloaded node answers on a reserved
/// connection.
pub fn for_operators(path: &str) -> bool {
    OPERATOR_PATHS.iter().any(|prefix| path.starts_with(prefix))
}

/// `router` for a reserved connection: [`for_operators`] paths served,
/// anything else answered [`overloaded`] (counted), and the connection
/// closed after that answer so that its client reconnects to a slot.
pub fn operators_only(router: Router, max: usize, shedding: Arc<Shedding>) -> Router {
    let filter = move |request: Request, next: Next| {
        let shedding = shedding.clone();
        async move {
            if for_operators(request.uri().path()) {
                return next.run(request).await;
            }
            shedding.record(Queue::HttpConnections, Cause::Count);
            let mut answer = overloaded(&connections_full(max));
            let close = header::HeaderValue::from_static("close");
            answer.headers_mut().insert(header::CONNECTION, close);
            answer
        }
    };
    router.layer(middleware::from_fn(filter))
}

/// The sentence of a connection refused at `max`.
fn connections_full(max: usize) -> String {
    format!("this node has {max} connections open, its limit (http_connections); retry shortly")
}

/// An `axum::serve` listener that hands over at most `max` connections at
/// once, and [`OPERATOR_RESERVE`] more marked as reserved; one more is
/// answered `503` and closed (counted).
pub struct LimitedListener<L> {
    inner: L,
    max: usize,
    slots: Arc<Semaphore>,
    reserve: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
    shedding: Arc<Shedding>,
}

impl<L> LimitedListener<L> {
    pub fn new(inner: L, max: usize, shedding: Arc<Shedding>) -> Self {
        LimitedListener {
            inner,
            max,
            slots: Arc::new(Semaphore::new(max)),
            reserve: Arc::new(Semaphore::new(OPERATOR_RESERVE)),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            shedding,
        }
    }

    /// The connection limit (for the sentence of reserved connections).
    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for a new connection: an ordinary one, else a reserved one.
    fn slot(&self) -> Option<(OwnedSemaphorePermit, bool)> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Some((slot, false));
        }
        let reserved = self.reserve.clone().try_acquire_owned().ok()?;
        Some((reserved, true))
    }
}

impl<L> axum::serve::Listener for LimitedListener<L>
where
    L: axum::serve::Listener,
{
    type Io = Slotted<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = self.inner.accept().await;
            if let Some((slot, reserved)) = self.slot() {
                let io = Slotted {
                    io,
                    reserved,
                    _slot: slot,
                };
                return (io, addr);
            }
            self.shedding.record(Queue::HttpConnections, Cause::Count);
            if let Ok(refusal) = self.refusals.clone().try_acquire_owned() {
                tokio::spawn(refuse(io, self.max, refusal));
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Answer a connection over the limit with a `503` and close it: the
/// answer goes out before the request is read (HTTP allows it), then
/// whatever the client sends is read and thrown away for a moment, so
/// the close does not reset the connection before the answer is read.
async fn refuse<Io>(mut io: Io, max: usize, refusal: OwnedSemaphorePermit)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send,
{
    let body = format!("{}\n", connections_full(max));
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: {RETRY_AFTER_SECS}\r\n\
         content-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    if io.write_all(answer.as_bytes()).await.is_ok() && io.shutdown().await.is_ok() {
        let mut sink = [0u8; 4096];
        let drain = async { while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(REFUSAL_LINGER, drain).await;
    }
    drop(refusal);
}

/// A connection holding one of the listener's slots until it closes.
pub struct Slotted<Io> {
    io: Io,
    /// Admitted from the [`OPERATOR_RESERVE`]: serve [`operators_only`].
    reserved: bool,
    _slot: OwnedSemaphorePermit,
}

impl<Io> Slotted<Io> {
    /// Whether this connection holds a reserved slot.
    pub fn reserved(&self) -> bool {
        self.reserved
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Slotted<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Slotted<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{mpsc, Notify};
    use tower::ServiceExt;

    const LIMIT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_request_beyond_the_limit_is_answered_503_at_once_and_counted() {
        let shedding = Arc::new(Shedding::default());
        let (entered, mut inside) = mpsc::unbounded_channel();
        let release = Arc::new(Notify::new());
        let held = release.clone();
        let slow = move || {
            let (entered, held) = (entered.clone(), held.clone());
            async move {
                let _ = entered.send(());
                held.notified().await;
                "done"
            }
        };
        let router: Router =
            limit_requests(Router::new().route("/", get(slow)), 1, shedding.clone());
        let request = || Request::get("/").body(Body::empty()).unwrap();
        let first = tokio::spawn(router.clone().oneshot(request()));
        tokio::time::timeout(LIMIT, inside.recv()).await.unwrap();

        let refused = tokio::time::timeout(LIMIT, router.clone().oneshot(request())).await;
        let refused = refused.expect("refused at once, not queued").unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(refused.into_body(), 1024)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body)
            .contains("serving 1 requests, its limit (http_requests)"));
        assert_eq!(shedding.get(Queue::HttpRequests, Cause::Count), 1);

        release.notify_one();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        let again = router.oneshot(request());
        release.notify_one();
        assert_eq!(again.await.unwrap().status(), StatusCode::OK);
    }

    /// The answer to a request on a new connection (its whole text).
    async fn ask(addr: std::net::SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let get = "GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
        let _ = stream.write_all(get.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(LIMIT, stream.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn a_connection_beyond_the_limit_is_answered_503_and_closed() {
        let shedding = Arc::new(Shedding::default());
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = LimitedListener::new(tcp, 2, shedding.clone());
        let router = Router::new().route("/", get(|| async { "hello" }));
        tokio::spawn(async move { axum::serve(listener, router).await });

        let mut idle = Vec::new();
        for _ in 0..2 + OPERATOR_RESERVE {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let refused = ask(addr).await;
        assert!(
            refused.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{refused}"
        );
        assert!(refused.contains("retry-after: 1\r\n"), "{refused}");
        assert!(refused.ends_with("its limit (http_connections); retry shortly\n"));
        assert_eq!(shedding.get(Queue::HttpConnections, Cause::Count), 1);

        // A closed connection gives its slot back.
        drop(idle);
        let served = tokio::time::timeout(LIMIT, async {
            loop {
                let answer = ask(addr).await;
                if answer.starts_with("HTTP/1.1 200") {
                    return answer;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        assert!(served.await.unwrap().ends_with("hello"));
    }
}
