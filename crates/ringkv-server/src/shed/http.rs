//! HTTP's share of load shedding: at most `http_requests` `/kv` requests
//! served at once — tower's `GlobalConcurrencyLimit` behind `LoadShed`, so
//! one more is answered at once instead of waiting for a slot — and at
//! most `http_connections` connections, one more answered and closed.
//!
//! Every overload answer is `503 Service Unavailable` with `Retry-After: 1`
//! (RFC 9110 §10.2.3: how long the client should wait) and one sentence.
//! A client that retries at once only adds to the load that caused it;
//! one second is the shortest the header can say.

use super::{Cause, Queue, Shedding};
use axum::error_handling::HandleErrorLayer;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::future::Future;
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

/// Connections being turned away at once; beyond, one is just closed.
const MAX_REFUSALS: usize = 256;
/// How long a refused connection is read (and discarded) after its
/// answer, so that closing it does not reset the answer away.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// `503` with `Retry-After` and `message` as the body.
pub fn overloaded(message: &str) -> Response {
    let retry = [(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())];
    (StatusCode::SERVICE_UNAVAILABLE, retry, format!("{message}\n")).into_response()
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

/// An `axum::serve` listener that hands over at most `max` connections at
/// once; one more is answered `503` and closed (counted).
pub struct LimitedListener<L> {
    inner: L,
    max: usize,
    slots: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
    shedding: Arc<Shedding>,
}

impl<L> LimitedListener<L> {
    pub fn new(inner: L, max: usize, shedding: Arc<Shedding>) -> Self {
        LimitedListener {
            inner,
            max,
            slots: Arc::new(Semaphore::new(max)),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            shedding,
        }
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
            if let Ok(slot) = self.slots.clone().try_acquire_owned() {
                return (Slotted { io, _slot: slot }, addr);
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
fn refuse<Io>(
    mut io: Io,
    max: usize,
    refusal: OwnedSemaphorePermit,
) -> impl Future<Output = ()> + Send
where
    Io: AsyncRead + AsyncWrite + Unpin + Send,
{
    async move {
        let body = format!(
            "this node has {max} connections open, its limit (http_connections); retry shortly\n"
        );
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
}

/// A connection holding one of the listener's slots until it closes.
pub struct Slotted<Io> {
    io: Io,
    _slot: OwnedSemaphorePermit,
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
