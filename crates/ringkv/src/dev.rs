//! `ringkv dev`: a local cluster of real node processes on loopback, on the
//! persistent default engine, for trying ringkv out.

use crate::client::Target;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
    /// Where each node keeps its config, data and log.
    #[arg(long, default_value = "ringkv-dev")]
    pub data_dir: PathBuf,
    /// Storage engine: fjall (on disk) or memory.
    #[arg(long, default_value = "fjall")]
    pub engine: String,
}

/// The processes of the cluster; dropping it stops them.
struct Cluster {
    children: Vec<(String, Child)>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &self.children {
            // SIGTERM lets each node finish its batch and close its store.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
        for (name, child) in &mut self.children {
            for _ in 0..50 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                eprintln!("{name} did not stop in 5 s; killed");
            }
            let _ = child.wait();
        }
    }
}

pub async fn run(args: DevArgs) -> Result<(), String> {
    if args.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    for (flag, base) in [
        ("--http-base-port", args.http_base_port),
        ("--peer-base-port", args.peer_base_port),
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
    let mut cluster = Cluster {
        children: Vec::new(),
    };
    for i in 1..=args.nodes {
        let name = format!("n{i}");
        let config = write_config(&args, i)?;
        let log = std::fs::File::create(args.data_dir.join(format!("{name}.log")))
            .map_err(|e| e.to_string())?;
        let child = Command::new(&exe)
            .args(["node", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        cluster.children.push((name, child));
    }
    let startup = async {
        wait_until_up(&args, &mut cluster).await?;
        print_banner(&args);
        self_check(&args).await
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
        stop.await;
    }
    println!("stopping...");
    drop(cluster);
    Ok(())
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

fn http_addr(args: &DevArgs, i: u16) -> String {
    format!("127.0.0.1:{}", args.http_base_port + i - 1)
}

fn write_config(args: &DevArgs, me: u16) -> Result<PathBuf, String> {
    let dir = args.data_dir.canonicalize().map_err(|e| e.to_string())?;
    let mut text = format!(
        "cluster = \"dev\"\nnode_id = \"n{me}\"\ndata_dir = {:?}\n\n[storage]\nengine = {:?}\n\n",
        dir.join(format!("n{me}")),
        args.engine
    );
    for i in 1..=args.nodes {
        text.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\naddr = \"127.0.0.1:{}\"\nhttp = \"{}\"\n\n",
            args.peer_base_port + i - 1,
            http_addr(args, i)
        ));
    }
    if args.nodes < 3 {
        let n = args.nodes;
        text.push_str(&format!(
            "[replication]\nn = {n}\nr = {}\nw = {}\n",
            n.min(2),
            n.min(2)
        ));
    }
    let path = dir.join(format!("n{me}.toml"));
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Poll every node's `/status` until all answer, or report the first node
/// that died with the end of its log.
async fn wait_until_up(args: &DevArgs, cluster: &mut Cluster) -> Result<(), String> {
    let http = reqwest::Client::new();
    for (i, (name, child)) in (1..).zip(cluster.children.iter_mut()) {
        let url = format!("http://{}/status", http_addr(args, i));
        let mut up = false;
        for _ in 0..300 {
            if let Ok(Some(status)) = child.try_wait() {
                let log = tail(&args.data_dir.join(format!("{name}.log")));
                return Err(format!("{name} exited ({status}):\n{log}"));
            }
            if http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !up {
            return Err(format!("{name} did not come up within 30 s"));
        }
    }
    Ok(())
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

fn print_banner(args: &DevArgs) {
    println!(
        "ringkv dev cluster is up ({} nodes, engine {}):",
        args.nodes, args.engine
    );
    for i in 1..=args.nodes {
        println!(
            "  n{i}  http://{}  (log {})",
            http_addr(args, i),
            args.data_dir.join(format!("n{i}.log")).display()
        );
    }
    let first = http_addr(args, 1);
    println!("\nTry:");
    println!("  curl -i -X PUT --data-binary 'hello' http://{first}/kv/greeting");
    println!(
        "  curl -i http://{}/kv/greeting",
        http_addr(args, args.nodes)
    );
    println!("  curl -s http://{first}/status");
}

/// Show the cluster working: write through the first node, read through
/// the last (which forwards when it is not the coordinator).
async fn self_check(args: &DevArgs) -> Result<(), String> {
    let first = Target {
        node: http_addr(args, 1),
    };
    let last = Target {
        node: http_addr(args, args.nodes),
    };
    println!(
        "\nSelf-check: put dev:check via n1, get it via n{}:",
        args.nodes
    );
    crate::client::put(&first, "dev:check", "it works".into(), None, None).await?;
    crate::client::get(&last, "dev:check", None).await
}
