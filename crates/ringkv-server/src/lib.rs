//! ringkv-server: the tokio shell around `ringkv-core`.
//!
//! Real sockets, disk and timers live here; every protocol decision is made
//! by the core's [`ringkv_core::node::Node`], driven on its own thread.

pub mod auth;
pub mod client_tls;
pub mod config;
pub mod console;
pub mod driver;
pub mod http;
mod http_accept;
mod http_buckets;
mod http_conditional;
pub mod http_crdt;
pub mod http_hash;
pub mod http_keys;
pub mod http_serve;
pub mod local;
pub mod members_file;
pub mod metrics;
mod openapi;
pub mod resp;
pub mod server;
pub mod shed;
pub mod status;
pub mod tls;
pub mod transport;

pub use config::NodeConfig;
pub use server::{run, ServerError};
