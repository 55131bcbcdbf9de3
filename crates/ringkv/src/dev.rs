//! `ringkv dev`: a local cluster of real node processes on loopback, on the
//! persistent default engine, for trying ringkv out.

use crate::client::{Routed, Target};
use ringkv_server::local::{LocalCluster, LocalPorts};
use std::path::PathBuf;
use std::time::Duration;

/// How long the nodes get to come up.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

#[derive(clap::Args)]
pub struct DevArgs {
    /// How many nodes to start.
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// HTTP port of the first node; node i listens on base + i - 1.
    #[arg(long, default_value_t = 8101)]
    pub http_base_port: u16,
    /// Inter-node port of the first node.
    #[arg(long, default_value_t = 7101)]
    pub peer_base_port: u16,
    /// Redis protocol port of the first node.
    #[arg(long, default_value_t = 6101)]
    pub resp_base_port: u16,
    /// Where each node keeps its config, data and log.
    #[arg(long, default_value = "ringkv-dev")]
    pub data_dir: PathBuf,
    /// Storage engine: fjall (on disk) or memory.
    #[arg(long, default_value = "fjall")]
    pub engine: String,
}

pub async fn run(args: DevArgs) -> Result<(), String> {
    if args.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    for (flag, base) in [
        ("--http-base-port", args.http_base_port),
        ("--peer-base-port", args.peer_base_port),
        ("--resp-base-port", args.resp_base_port),
    ] {
        // Node i listens on base + i - 1: every one must be a real port.
        let last = u32::from(base) + u32::from(args.nodes) - 1;
        if base == 0 || last > u32::from(u16::MAX) {
            return Err(format!(
                "{flag} {base} does not fit {} nodes: ports must be within 1..=65535",
                args.nodes
            ));
        }
    }
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // Listen for Ctrl-C and SIGTERM before starting any node: until a handler
    // exists, either signal kills this process at once and leaves its nodes
    // running, unowned, on their ports.
    let stop = stop_signal()?;
    tokio::pin!(stop);
    let ports = (0..args.nodes)
        .map(|i| LocalPorts {
            http: args.http_base_port + i,
            peer: args.peer_base_port + i,
            resp: args.resp_base_port + i,
        })
        .collect();
    let mut cluster = LocalCluster::start(&exe, &args.data_dir, &args.engine, ports)
        .map_err(|e| e.to_string())?;
    let startup = async {
        cluster
            .wait_until_up(STARTUP_LIMIT)
            .await
            .map_err(|e| e.to_string())?;
        print_banner(&args, &cluster);
        self_check(&cluster).await
    };
    let interrupted = tokio::select! {
        started = startup => {
            started?;
            false
        }
        _ = &mut stop => true,
    };
    if !interrupted {
        println!("\nCtrl-C stops the cluster.");
        report_exits_until(&mut cluster, stop).await;
    }
    println!("stopping...");
    drop(cluster);
    Ok(())
}

/// Wait for `stop`, saying at once when a node process exits (killed,
/// crashed, refused its config): the others keep running, and the user
/// learns where its log is and how to start it again.
async fn report_exits_until(
    cluster: &mut LocalCluster,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        for (i, status) in cluster.exited() {
            println!(
                "n{i} exited ({status}); the others keep running. Its log: {}; start it \
                 again with: {}",
                cluster.log_path(i).display(),
                cluster.restart_command(i)
            );
        }
    }
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM. The handlers are
/// installed when this is called, not when the future is first polled.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let listen =
        |kind: SignalKind| signal(kind).map_err(|e| format!("cannot listen for signals: {e}"));
    let mut interrupt = listen(SignalKind::interrupt())?;
    let mut terminate = listen(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

fn print_banner(args: &DevArgs, cluster: &LocalCluster) {
    println!(
        "ringkv dev cluster is up ({} nodes, engine {}):",
        args.nodes, args.engine
    );
    for i in 1..=cluster.len() {
        println!(
            "  n{i}  http://{}  redis {}  (log {})",
            cluster.http_addr(i),
            cluster.resp_addr(i),
            cluster.log_path(i).display()
        );
    }
    let first = cluster.http_addr(1);
    println!("\nTry:");
    println!("  curl -i -X PUT --data-binary 'hello' http://{first}/kv/greeting");
    println!(
        "  curl -i http://{}/kv/greeting",
        cluster.http_addr(cluster.len())
    );
    println!("  curl -s http://{first}/status");
    println!("  open http://{first}/ui in a browser              # the live web console");
    let resp = cluster.resp_addr(1).port();
    println!("  redis-cli -p {resp} set greeting hello    # the Redis keyspace (last-write-wins)");
    let token = cluster.admin_token_path();
    println!(
        "\nSecure by default: peers speak mutual TLS (certificates in {}); /kv, /status \
         and the Redis port are open on loopback; /admin/* needs the admin token in {}:",
        cluster.certs_dir().display(),
        token.display()
    );
    println!(
        "  curl -i -X POST -H \"Authorization: Bearer $(cat {})\" http://{first}/admin/repair",
        token.display()
    );
    println!("  ringkv repair --token-file {}", token.display());
}

/// Show the cluster working: write through the first node, read through
/// the last, both with generic routing so the last node forwards when it
/// is not the coordinator.
async fn self_check(cluster: &LocalCluster) -> Result<(), String> {
    let last = cluster.len();
    let through = |i: usize| Routed {
        target: Target {
            node: cluster.http_addr(i).to_string(),
        },
        generic: true,
    };
    println!("\nSelf-check: put dev:check via n1, get it via n{last}:");
    let kv = crate::client::InBucket { bucket: None };
    crate::client::put(
        &through(1),
        &kv,
        ("dev:check", "it works".into()),
        (None, None),
        None,
    )
    .await?;
    crate::client::get(&through(last), &kv, "dev:check", None).await
}
