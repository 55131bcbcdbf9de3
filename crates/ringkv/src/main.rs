//! `ringkv`: run a node, a local dev cluster, or talk to a cluster.

mod bench;
mod bucket;
mod cert;
mod client;
mod dev;
mod logging;
mod sim;
mod status_table;
mod user;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: a PUT profile showed about a tenth
/// of every node's CPU time in glibc malloc/free (see README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ringkv",
    version,
    about = "A Dynamo-style replicated key-value store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    credential: client::Credential,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node from its TOML config.
    Node {
        #[arg(long)]
        config: PathBuf,
        /// Join a running cluster through this member's inter-node address
        /// (repeatable; adds to the config's `seeds`).
        #[arg(long = "join", value_name = "ADDR")]
        join: Vec<std::net::SocketAddr>,
        /// Take over the ranges of this dead member (Cassandra's
        /// replace_address): the new node joins through its seeds, removes
        /// the dead one once the cluster sees it down, and fetches exactly
        /// its share from the surviving replicas.
        #[arg(long = "replace", value_name = "DEAD_ID")]
        replace: Option<String>,
        #[command(flatten)]
        log: logging::LogArgs,
    },
    /// Make a node leave the cluster: it hands its data to the new owners,
    /// then stops.
    Leave {
        #[command(flatten)]
        target: client::Target,
    },
    /// Remove a member that will never come back (dead disk, lost machine):
    /// the survivors hand its ranges to their new owners. Refused for a
    /// member that is up unless --force; a removed node can never rejoin
    /// under its id.
    Remove {
        /// The id of the member to remove.
        node_id: String,
        /// Remove it even though it is up (it is then fenced and stops).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        target: client::Target,
    },
    /// YCSB-style open-loop load generator: run a workload against a
    /// ringkv (or etcd) cluster and report throughput and latency.
    Bench(bench::BenchArgs),
    /// Start a local cluster of node processes on loopback, check that it
    /// works, and keep it running until Ctrl-C.
    Dev(dev::DevArgs),
    /// Create, change and list buckets.
    Bucket {
        #[command(subcommand)]
        command: bucket::BucketCommand,
    },
    /// Write a value.
    Put {
        key: String,
        value: String,
        #[command(flatten)]
        routed: client::Routed,
        #[command(flatten)]
        bucket: client::InBucket,
        #[arg(long)]
        w: Option<usize>,
        /// Causal context from a previous `get` (omit for a blind write).
        #[arg(long)]
        context: Option<String>,
        /// Seconds the value lives; it then reads as missing everywhere.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        ttl: Option<u64>,
    },
    /// List the keys of a bucket, one per line: `default` (the `/kv`
    /// keys), `redis` (the Redis protocol's keys, each with its type) or
    /// any bucket `ringkv bucket list` shows.
    /// Reads every key of the cluster once: for administration, not for
    /// the request path.
    Keys {
        #[command(flatten)]
        routed: client::Routed,
        #[arg(long, default_value = "default")]
        bucket: String,
        /// Keys per request to the cluster.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10000))]
        page: u64,
    },
    /// Read a key; prints every sibling when there are several.
    Get {
        key: String,
        #[command(flatten)]
        routed: client::Routed,
        #[command(flatten)]
        bucket: client::InBucket,
        #[arg(long)]
        r: Option<usize>,
    },
    /// Delete a key (what a fresh read sees, or what `--context` saw).
    Delete {
        key: String,
        #[command(flatten)]
        routed: client::Routed,
        #[command(flatten)]
        bucket: client::InBucket,
        #[arg(long)]
        w: Option<usize>,
        #[arg(long)]
        context: Option<String>,
    },
    /// Force anti-entropy now: exchange every range this node replicates
    /// (or the one holding `--range TOKEN`) with every other replica.
    Repair {
        #[command(flatten)]
        target: client::Target,
        #[arg(long)]
        range: Option<u64>,
        /// Rebuild the node's Merkle trees from disk before exchanging.
        #[arg(long)]
        rebuild: bool,
    },
    /// Run seeded simulations of a cluster under faults and check them;
    /// `--seed S` replays one run exactly.
    Sim(sim::SimArgs),
    /// Create inter-node credentials: the cluster CA and node certificates.
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// Manage client credentials: a users file of names, roles and
    /// hashed tokens.
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Show a node's view of the cluster.
    Status {
        #[command(flatten)]
        target: client::Target,
        /// Print the node's whole `/status` document as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = match &cli.command {
        Command::Node { log, .. } => log.clone(),
        _ => logging::LogArgs::default(),
    };
    if let Err(message) = logging::init(&log) {
        return fail(message);
    }
    // Commands that need no runtime.
    client::set_credential(cli.credential);
    let command = match cli.command {
        Command::Sim(args) => return finish(sim::run_sims(args)),
        Command::User { command } => return finish(user::run(command)),
        Command::Cert(command) => return finish(cert::run(command)),
        command => command,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let outcome = runtime.block_on(async {
        match command {
            Command::Node {
                config,
                join,
                replace,
                ..
            } => ringkv_server::local::run_node(&config, join, replace)
                .await
                .map_err(|e| e.to_string()),
            Command::Leave { target } => client::leave(&target).await,
            Command::Remove {
                node_id,
                force,
                target,
            } => client::remove(&target, &node_id, force).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Dev(args) => dev::run(args).await,
            Command::Put {
                key,
                value,
                routed,
                bucket,
                w,
                context,
                ttl,
            } => client::put(&routed, &bucket, (&key, value), (w, ttl), context).await,
            Command::Bucket { command } => bucket::run(command).await,
            Command::Keys {
                routed,
                bucket,
                page,
            } => client::keys(&routed, &bucket, page as usize).await,
            Command::Get {
                key,
                routed,
                bucket,
                r,
            } => client::get(&routed, &bucket, &key, r).await,
            Command::Delete {
                key,
                routed,
                bucket,
                w,
                context,
            } => client::delete(&routed, &bucket, &key, w, context).await,
            Command::Repair {
                target,
                range,
                rebuild,
            } => client::repair(&target, range, rebuild).await,
            Command::Status { target, json } => client::status(&target, json).await,
            Command::Sim(_) | Command::User { .. } | Command::Cert(_) => {
                unreachable!("handled before the runtime starts")
            }
        }
    });
    finish(outcome)
}

fn finish(outcome: Result<(), String>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
}

fn fail(message: String) -> ExitCode {
    logging::fatal(&message);
    ExitCode::FAILURE
}
