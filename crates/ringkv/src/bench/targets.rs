//! The systems a benchmark sends operations to: ringkv through
//! `ringkv-client`, and etcd (see [`super::etcd`]).

use super::args::{BenchArgs, RoutingArg};
use super::workload::{Op, OpKind};
use ringkv_client::{Client, Context, Error, Options, Routing};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

/// How an operation that did not fail ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    Ok,
    /// A read found no value.
    NotFound,
}

/// A system under test. An error is one sentence, counted by the report;
/// it never stops the run.
pub trait Target: Send + Sync + 'static {
    fn execute(&self, op: Op) -> impl Future<Output = Result<Done, String>> + Send;
}

/// ringkv through its Rust client, with `--routing`, `--r` and `--w`.
///
/// An update or insert writes with the context of the last read or write
/// of that key this run made (a blind write when there was none), as an
/// application holding on to contexts would: one round trip, like etcd's
/// put, and no pile-up of siblings — two updates of one key in flight at
/// once leave two siblings, which a write after the next read supersedes.
/// A read-modify-write reads afresh and writes against that read's context.
pub struct Ringkv {
    client: Client,
    options: Options,
    contexts: Mutex<HashMap<String, Context>>,
}

impl Ringkv {
    /// Fetch the topology from the first of `--nodes` that answers; fails
    /// when none does.
    pub async fn connect(args: &BenchArgs) -> Result<Ringkv, String> {
        let routing = match args.routing {
            Some(RoutingArg::Generic) => Routing::Generic,
            Some(RoutingArg::PartitionAware) | None => Routing::PartitionAware,
        };
        let client = crate::client::with_credential(Client::builder().routing(routing))?
            .connect(args.nodes.iter().map(String::as_str))
            .await
            .map_err(|e| format!("no ringkv node reachable: {e}"))?;
        Ok(Ringkv {
            client,
            options: Options {
                r: args.r,
                w: args.w,
                timeout: None,
                ttl: None,
            },
            contexts: Mutex::new(HashMap::new()),
        })
    }

    fn context_of(&self, key: &str) -> Context {
        let contexts = self.contexts.lock().unwrap_or_else(PoisonError::into_inner);
        contexts.get(key).cloned().unwrap_or_default()
    }

    fn remember(&self, key: String, context: Context) {
        let mut contexts = self.contexts.lock().unwrap_or_else(PoisonError::into_inner);
        contexts.insert(key, context);
    }
}

impl Target for Ringkv {
    async fn execute(&self, op: Op) -> Result<Done, String> {
        let (client, options) = (&self.client, &self.options);
        let (done, context) = match op.kind {
            OpKind::Read => {
                let read = client.get_with(&op.key, options).await;
                let read = read.map_err(describe)?;
                let done = if read.is_empty() {
                    Done::NotFound
                } else {
                    Done::Ok
                };
                (done, read.context)
            }
            OpKind::Update | OpKind::Insert => {
                let context = self.context_of(&op.key);
                let written = client.put_with(&op.key, &op.value, &context, options).await;
                (Done::Ok, written.map_err(describe)?)
            }
            OpKind::ReadModifyWrite => {
                let written = client
                    .update_with(&op.key, options, |_| op.value.clone())
                    .await;
                (Done::Ok, written.map_err(describe)?)
            }
        };
        self.remember(op.key, context);
        Ok(done)
    }
}

/// `error` in words that do not change from key to key, so the report can
/// count errors by message: reqwest's own message names the URL.
fn describe(error: Error) -> String {
    match &error {
        Error::Unreachable { node, source } => {
            format!("cannot reach node {node}: {}", root_cause(source))
        }
        Error::Interrupted { node, source } => {
            format!("lost the connection to node {node}: {}", root_cause(source))
        }
        _ => error.to_string(),
    }
}

/// The innermost error of `error`'s chain (e.g. "Connection refused").
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
