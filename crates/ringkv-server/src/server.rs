//! Start and stop one node: open its store, bind the inter-node transport
//! and the HTTP API, and run the protocol on its own thread.

use crate::config::NodeConfig;
use crate::driver::{self, NodeHandle};
use crate::http::{self, Api};
use crate::transport::{Transport, TransportConfig};
use ringkv_core::message::Message;
use ringkv_core::node::Node;
use ringkv_core::ring::{Ring, RingMember};
use ringkv_core::NodeId;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Storage(#[from] ringkv_core::store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Run the node until `shutdown` resolves, then stop cleanly: HTTP stops
/// accepting, the node thread finishes its batch and the store is closed.
pub async fn run(
    config: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let me = config.me().cloned().ok_or_else(|| {
        std::io::Error::other(format!("node_id {} is not in [[nodes]]", config.node_id))
    })?;
    let settings = config.settings();
    let (storage, dir) = (config.storage.clone(), config.data_dir.clone());
    let store = tokio::task::spawn_blocking(move || ringkv_store::open(&storage, &dir.join("kv")))
        .await
        .map_err(std::io::Error::other)??;

    let members = config.nodes.iter().map(|m| RingMember {
        id: NodeId::new(&m.id),
        zone: m.zone.clone(),
    });
    let ring = Ring::with_members(members, settings.vnodes);
    let (inbound_tx, mut inbound_rx) = mpsc::unbounded_channel();
    let transport_config = TransportConfig {
        cluster: config.cluster.clone(),
        node_id: NodeId::new(&me.id),
        listen: me.addr,
        peers: config
            .nodes
            .iter()
            .map(|m| (NodeId::new(&m.id), m.addr))
            .collect(),
        max_frame_bytes: settings.max_frame_bytes(),
        connect_timeout: Duration::from_millis(500),
    };
    let transport = Transport::<Message>::bind(transport_config, inbound_tx)
        .await
        .map_err(|source| ServerError::Bind {
            addr: me.addr,
            source,
        })?;

    let node = Node::new(NodeId::new(&me.id), settings.clone(), ring, store)?;
    let (handle, thread) =
        driver::spawn(node, transport.clone(), tokio::runtime::Handle::current())?;
    let bridge = handle.clone();
    tokio::spawn(async move {
        while let Some(event) = inbound_rx.recv().await {
            if !bridge.deliver(event) {
                break;
            }
        }
    });

    let listener = tokio::net::TcpListener::bind(me.http)
        .await
        .map_err(|source| ServerError::Bind {
            addr: me.http,
            source,
        })?;
    let api = Api {
        node: handle.clone(),
        transport,
        cluster: config.cluster.clone(),
        members: config.nodes.clone(),
        request_limit: client_limit(&settings),
        max_value_bytes: settings.max_value_bytes,
        fault_injection: config.fault_injection,
    };
    tracing::info!(
        "node {} up: inter-node {}, http {}, data {} ({:?})",
        me.id,
        me.addr,
        me.http,
        config.data_dir.display(),
        config.storage.engine
    );
    let served = axum::serve(listener, http::router(api))
        .with_graceful_shutdown(shutdown)
        .await;
    stop(&handle, thread).await;
    served.map_err(ServerError::from)
}

/// The longest a client waits: every preference-list node tried in turn.
fn client_limit(settings: &ringkv_core::settings::Settings) -> Duration {
    Duration::from_millis(settings.forward_timeout_ms() * settings.n as u64 + 1000)
}

async fn stop(handle: &NodeHandle, thread: std::thread::JoinHandle<()>) {
    handle.stop();
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
}
