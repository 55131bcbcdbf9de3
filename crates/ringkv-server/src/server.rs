//! Start and stop one node: open its store, bind the inter-node transport,
//! the Redis protocol and the HTTP API, and run the protocol on its own
//! thread.

use crate::auth::{self, Access};
use crate::client_tls::{self, TlsListener};
use crate::config::NodeConfig;
use crate::driver::{self, Ending, NodeHandle};
use crate::http::{self, Api};
use crate::http_serve;
use crate::members_file::{self, MembersFileError};
use crate::metrics::{Frontend, Metrics};
use crate::resp;
use crate::shed::http::LimitedListener;
use crate::shed::{Budget, Shedding};
use crate::transport::{Transport, TransportConfig};
use ringkv_core::message::Message;
use ringkv_core::node::Node;
use ringkv_core::NodeId;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Storage(#[from] ringkv_core::store::StoreError),
    #[error(transparent)]
    Members(#[from] MembersFileError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error("{0}")]
    ClientTls(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The cluster refused this node (its settings differ).
    #[error("{0}")]
    Refused(String),
}

/// Run the node until `shutdown` resolves or the node has left the
/// cluster, then stop cleanly: HTTP stops accepting, the node thread
/// finishes its batch and the store is closed.
pub async fn run(
    config: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let (me, listen) = config.me().cloned().zip(config.listen()).ok_or_else(|| {
        std::io::Error::other(format!("node_id {} is not in [[nodes]]", config.node_id))
    })?;
    // Credentials first: a node that cannot use them fails before it
    // touches its data directory.
    let peer_tls = peer_tls(&config)?;
    private_dir(&config.data_dir)?;
    let settings = config.settings();
    // Read before anything is opened: a broken users file stops the start.
    let access = Arc::new(Access::from_config(config.auth.as_ref(), config.insecure)?);
    if let Some(auth) = &config.auth {
        let watched = Arc::downgrade(&access);
        tokio::spawn(auth::reload::watch_users(watched, auth.users.clone()));
    }
    let tls = match &config.client_tls {
        Some(tls) => Some(client_tls::acceptor(tls).map_err(ServerError::ClientTls)?),
        None => None,
    };
    let (storage, dir) = (config.storage.clone(), config.data_dir.clone());
    let store = tokio::task::spawn_blocking(move || ringkv_store::open(&storage, &dir.join("kv")))
        .await
        .map_err(std::io::Error::other)??;

    // Refuses a data directory written with other cluster settings, before
    // any protocol code runs over the store.
    let members = members_file::start(&config)?;
    let shedding = Arc::new(Shedding::default());
    let node_id = NodeId::new(&me.id);
    let queue_budget = Budget::new(config.limits.node_queue());
    let queue = driver::EventQueue::new(&node_id, queue_budget, shedding.clone());
    let transport_config = TransportConfig {
        cluster: config.cluster.clone(),
        node_id,
        settings: settings.cluster(),
        listen: listen.addr,
        // Known members; gossip adds the others as they are learned.
        peers: members
            .members()
            .filter_map(|m| Some((m.id.clone(), m.addr.as_ref()?.parse().ok()?)))
            .collect(),
        max_frame_bytes: settings.max_frame_bytes(),
        // Below the kernel's first SYN retransmission (1 s): an attempt
        // whose SYN was lost (begun just before a partition heals) is
        // abandoned and retried after the 250 ms reconnect backoff instead
        // of waiting on the kernel, so a healed link carries traffic again
        // within 1 s. A LAN handshake takes well under a millisecond.
        connect_timeout: Duration::from_millis(500),
        tls: peer_tls,
        queue: config.limits.peer_queue(),
        shedding: shedding.clone(),
    };
    let sink = queue.peer_sink();
    let acceptor = sink.acceptor();
    let transport = Transport::<Message>::bind(transport_config, sink)
        .await
        .map_err(|source| ServerError::Bind {
            addr: listen.addr,
            source,
        })?;
    let _ = acceptor.set(transport.downgrade());

    let metrics = Arc::new(Metrics::new());
    metrics.declare_requests(Frontend::Http, &http::KV_OPS);
    metrics.declare_requests(Frontend::Http, &crate::http_crdt::OPS);
    metrics.declare_requests(Frontend::Http, &crate::http_hash::OPS);
    let started = driver::now_ms() as f64 / 1000.0;
    let rng_seed = driver::now_ms() ^ u64::from(std::process::id());
    let node = Node::with_membership(settings.clone(), members, store, rng_seed)?;
    let (handle, thread) = driver::spawn(
        node,
        transport.clone(),
        queue,
        config.data_dir.clone(),
        metrics.clone(),
        tokio::runtime::Handle::current(),
    )?;
    // Bound before HTTP: a node that answers HTTP serves RESP too.
    let resp = match listen.resp {
        Some(addr) => {
            let shared = (access.clone(), metrics.clone(), shedding.clone());
            let resp = start_resp(addr, &handle, &config, shared, tls.clone());
            Some(resp.await?)
        }
        None => None,
    };
    let listener = bind(listen.http).await?;
    let api = Api {
        node: handle.clone(),
        transport,
        cluster: config.cluster.clone(),
        request_limit: client_limit(&settings),
        max_value_bytes: settings.max_value_bytes,
        max_key_bytes: settings.max_key_bytes,
        fault_injection: config.fault_injection,
        access,
        metrics,
        started,
        limits: config.limits.clone(),
        shedding: shedding.clone(),
    };
    tracing::info!(
        "node {} up: inter-node {}, {} {}, resp {}{}, data {} ({:?})",
        me.id,
        bound(listen.addr, me.addr),
        if tls.is_some() { "https" } else { "http" },
        bound(listen.http, me.http),
        listen
            .resp
            .zip(me.resp)
            .map_or("off".into(), |(bound_at, told)| bound(bound_at, told)),
        if tls.is_some() && me.resp.is_some() {
            " (TLS)"
        } else {
            ""
        },
        config.data_dir.display(),
        config.storage.engine
    );
    let ended = handle.ended();
    let stop_on = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = ended => tracing::info!("node stops by itself"),
        }
    };
    let router = http::router(api);
    let (max, header_timeout) = (
        config.limits.http_connections,
        config.limits.http_header_timeout(),
    );
    match tls {
        Some(acceptor) => {
            let listener = TlsListener::new(listener, acceptor)?;
            let limited = LimitedListener::new(listener, max, shedding.clone());
            http_serve::serve(limited, router, header_timeout, shedding, stop_on).await
        }
        None => {
            let limited = LimitedListener::new(listener, max, shedding.clone());
            http_serve::serve(limited, router, header_timeout, shedding, stop_on).await
        }
    };
    if let Some(resp) = resp {
        resp.abort();
    }
    stop(&handle, thread).await;
    if let Some(Ending::Refused(reason)) = handle.ending() {
        return Err(ServerError::Refused(reason));
    }
    Ok(())
}

/// Serve the Redis protocol on `addr` until the task is aborted.
async fn start_resp(
    addr: SocketAddr,
    node: &NodeHandle,
    config: &NodeConfig,
    (access, metrics, shedding): (Arc<Access>, Arc<Metrics>, Arc<Shedding>),
    tls: Option<TlsAcceptor>,
) -> Result<JoinHandle<()>, ServerError> {
    let settings = config.settings();
    metrics.declare_requests(Frontend::Resp, &resp::OPS);
    let load = resp::Load {
        limits: &config.limits,
        shedding,
    };
    let mut ctx = resp::Context::new(
        node.clone(),
        config.cluster.clone(),
        &settings,
        client_limit(&settings),
        addr.port(),
        (access, metrics),
        load,
    );
    ctx.bucket = config.redis_bucket.clone();
    Ok(tokio::spawn(resp::serve(bind(addr).await?, ctx, tls)))
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// A listener for the start-up line: `ADDR`, or `BIND (advertised ADDR)`.
fn bound(bind: SocketAddr, advertised: SocketAddr) -> String {
    if bind == advertised {
        bind.to_string()
    } else {
        format!("{bind} (advertised {advertised})")
    }
}

/// The longest a client waits: every preference-list node tried in turn.
fn client_limit(settings: &ringkv_core::settings::Settings) -> Duration {
    Duration::from_millis(settings.forward_timeout_ms() * settings.n as u64 + 1000)
}

async fn stop(handle: &NodeHandle, thread: std::thread::JoinHandle<()>) {
    handle.stop();
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
}

/// The node's inter-node credential, loaded before anything listens; `None`
/// only when the config says `insecure = true` (validation ensures one).
fn peer_tls(config: &NodeConfig) -> Result<Option<crate::tls::PeerTls>, ServerError> {
    match &config.tls {
        Some(tls) => Ok(Some(crate::tls::PeerTls::load(tls, &config.node_id)?)),
        None => {
            tracing::warn!("insecure = true: inter-node traffic is plaintext and unauthenticated");
            if config.auth.is_none() {
                tracing::warn!(
                    "insecure = true without [auth]: every client may do everything, /admin/* included"
                );
            }
            Ok(None)
        }
    }
}

/// The data directory holds every value in clear: owner only (0700), as
/// PostgreSQL insists for its own.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}
