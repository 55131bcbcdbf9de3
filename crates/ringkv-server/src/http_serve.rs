//! Serving the HTTP port: hyper's HTTP/1 connections, one task each, as
//! `axum::serve` does — served here because `axum::serve` sets no header
//! read timeout (and no timer for one), so a connection that sends half a
//! request head, or nothing, held its `http_connections` slot for ever.
//!
//! Every connection gets hyper's `header_read_timeout`
//! (`[limits] http_header_timeout_ms`): hyper starts it whenever the
//! connection waits for a request head — when it opens and after each
//! answer — so the one timeout closes both slow heads (slowloris) and idle
//! keep-alive connections. Connections from the reserve (see
//! [`crate::shed::http::OPERATOR_RESERVE`]) serve only operators' paths.
//!
//! Graceful shutdown is hyper-util's: once `stop_on` resolves no
//! connection is accepted, idle ones close, and requests under way finish.

use crate::shed::http::{operators_only, LimitedListener};
use crate::shed::Shedding;
use axum::serve::Listener;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Serve `router` on `listener` until `stop_on` resolves, then wait for
/// the connections under way to finish.
pub async fn serve<L>(
    mut listener: LimitedListener<L>,
    router: Router,
    header_timeout: Duration,
    shedding: Arc<Shedding>,
    stop_on: impl Future<Output = ()> + Send + 'static,
) where
    L: Listener,
{
    let reserved = operators_only(router.clone(), listener.max(), shedding);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    let mut stop_on = std::pin::pin!(stop_on);
    loop {
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop_on => break,
        };
        let service = if io.reserved() {
            reserved.clone()
        } else {
            router.clone()
        };
        let service = TowerToHyperService::new(service);
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // A timed-out head, a reset, a malformed request: the
                // client's business, not the operator's.
                tracing::debug!("http connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shed::{Cause, Queue};
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const LIMIT: Duration = Duration::from_secs(20);

    /// A node's router in small: `/kv/x` for clients, `/health/live` for
    /// operators, on `max` connections; its address and shed counters.
    async fn start(max: usize, header_timeout: Duration) -> (std::net::SocketAddr, Arc<Shedding>) {
        let shedding = Arc::new(Shedding::default());
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = LimitedListener::new(tcp, max, shedding.clone());
        let router = Router::new()
            .route("/kv/x", get(|| async { "value" }))
            .route("/health/live", get(|| async { "ok" }));
        let stop = std::future::pending();
        let serving = serve(listener, router, header_timeout, shedding.clone(), stop);
        tokio::spawn(serving);
        (addr, shedding)
    }

    /// The answer to `GET path` on a new connection (its whole text).
    async fn ask(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let get = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        let _ = stream.write_all(get.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(LIMIT, stream.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// A connection that sent half a request head and nothing more.
    async fn half_request(addr: std::net::SocketAddr) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let half = "GET /kv/x HTTP/1.1\r\nHost: a\r\n";
        stream.write_all(half.as_bytes()).await.unwrap();
        stream
    }

    #[tokio::test]
    async fn beyond_the_limit_operators_are_served_and_clients_refused() {
        let (addr, shedding) = start(2, Duration::from_secs(600)).await;
        let _held = [half_request(addr).await, half_request(addr).await];

        let live = ask(addr, "/health/live").await;
        assert!(live.starts_with("HTTP/1.1 200 OK\r\n"), "{live}");
        let refused = ask(addr, "/kv/x").await;
        assert!(
            refused.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{refused}"
        );
        assert!(refused.contains("retry-after: 1\r\n"), "{refused}");
        assert!(refused.ends_with("its limit (http_connections); retry shortly\n"));
        assert_eq!(shedding.get(Queue::HttpConnections, Cause::Count), 1);
    }

    #[tokio::test]
    async fn a_connection_that_sends_no_whole_head_is_closed() {
        let (addr, _) = start(4, Duration::from_millis(200)).await;
        let mut half = half_request(addr).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        for stream in [&mut half, &mut silent] {
            let mut rest = Vec::new();
            let read = tokio::time::timeout(LIMIT, stream.read_to_end(&mut rest)).await;
            // Closed by the server (EOF or reset), not by the deadline.
            assert!(read.is_ok(), "still open after {LIMIT:?}");
        }
        assert!(ask(addr, "/kv/x").await.ends_with("value"));
    }
}
