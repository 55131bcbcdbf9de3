//! Local clusters of real node processes on loopback: what `ringkv dev`
//! runs, and what examples and benchmarks start to have a cluster to talk
//! to.
//!
//! Every node is its own process, `PROGRAM node --config FILE`, so it can
//! be killed and restarted like a real server. `PROGRAM` is the `ringkv`
//! binary, or any program that starts with [`run_if_node_process`] (an
//! example re-executing itself, so it needs no separately built binary).

use crate::{NodeConfig, ServerError};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Why a local cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot use {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {node}: {source}")]
    Spawn {
        node: String,
        source: std::io::Error,
    },
    #[error("{node} exited ({status}):\n{log}")]
    Exited {
        node: String,
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("{node} did not come up within {limit:?}")]
    Timeout { node: String, limit: Duration },
    #[error("cannot find free loopback ports: {0}")]
    Ports(std::io::Error),
    #[error(transparent)]
    Credentials(#[from] crate::tls::certs::CertError),
    #[error(transparent)]
    Users(#[from] crate::auth::AuthError),
}

/// The addresses of one local node.
#[derive(Clone, Copy, Debug)]
pub struct LocalPorts {
    pub http: u16,
    pub peer: u16,
    /// Redis protocol.
    pub resp: u16,
}

/// Node processes `n1..nN` on 127.0.0.1; dropping it stops them (SIGTERM,
/// then SIGKILL after 5 s).
pub struct LocalCluster {
    program: PathBuf,
    dir: PathBuf,
    ports: Vec<LocalPorts>,
    /// `None` while a node is killed.
    children: Vec<Option<Child>>,
}

impl LocalCluster {
    /// Write each node's config to `dir` (which must exist) and start one
    /// `program node --config FILE` process per entry of `ports`. Data and
    /// logs (`n{i}.log`, the node's stderr) go to `dir` too.
    pub fn start(
        program: &Path,
        dir: &Path,
        engine: &str,
        ports: Vec<LocalPorts>,
    ) -> Result<LocalCluster, LocalError> {
        // Configs name the data directories absolutely.
        let dir = dir.canonicalize().map_err(|source| LocalError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut cluster = LocalCluster {
            program: program.to_path_buf(),
            dir,
            children: ports.iter().map(|_| None).collect(),
            ports,
        };
        cluster.ensure_credentials()?;
        for i in 1..=cluster.len() {
            let path = cluster.config_path(i);
            std::fs::write(&path, cluster.config_text(i, engine))
                .map_err(|source| LocalError::Io { path, source })?;
            let log = cluster.log_path(i);
            std::fs::File::create(&log).map_err(|source| LocalError::Io { path: log, source })?;
            cluster.spawn(i)?;
        }
        Ok(cluster)
    }

    /// Start `nodes` nodes on the default engine and free loopback ports,
    /// each a copy of the running program (which must begin with
    /// [`run_if_node_process`]), and wait up to 30 s until all answer. For
    /// examples and benchmarks that bring their own cluster.
    pub async fn start_self(dir: &Path, nodes: usize) -> Result<LocalCluster, LocalError> {
        let program = std::env::current_exe().map_err(|source| LocalError::Io {
            path: PathBuf::from("(current executable)"),
            source,
        })?;
        let mut cluster = LocalCluster::start(&program, dir, "fjall", free_ports(nodes)?)?;
        cluster.wait_until_up(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// HTTP address of node `i` (1-based, like its id `n{i}`).
    pub fn http_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[i - 1].http))
    }

    /// Inter-node address of node `i`.
    pub fn peer_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[i - 1].peer))
    }

    /// Redis protocol address of node `i`.
    pub fn resp_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[i - 1].resp))
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("n{i}.log"))
    }

    fn config_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("n{i}.toml"))
    }

    /// Where the cluster's CA and node certificates live.
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.join("certs")
    }

    /// The file holding the cluster's admin token (0600), for `/admin/*`.
    pub fn admin_token_path(&self) -> PathBuf {
        self.dir.join("admin.token")
    }

    /// The admin token, for tools that drive the cluster.
    pub fn admin_token(&self) -> Result<String, LocalError> {
        let path = self.admin_token_path();
        std::fs::read_to_string(&path)
            .map(|t| t.trim().to_owned())
            .map_err(|source| LocalError::Io { path, source })
    }

    /// Secure by default, like any cluster: a CA and a certificate per node
    /// in [`certs_dir`](Self::certs_dir), made on the first start and kept
    /// for the next ones (the CA key stays there too: it is a dev cluster).
    fn ensure_credentials(&self) -> Result<(), LocalError> {
        use crate::tls::certs::{create_ca, create_node, CA_DAYS, NODE_DAYS};
        let certs = self.certs_dir();
        if !certs.join("ca.pem").exists() {
            create_ca(&certs, "dev", CA_DAYS)?;
        }
        for i in 1..=self.len() {
            let id = format!("n{i}");
            if !certs.join(format!("{id}.pem")).exists() {
                create_node(
                    &certs,
                    &id,
                    &["127.0.0.1".into(), "localhost".into()],
                    NODE_DAYS,
                )?;
            }
        }
        self.ensure_admin()
    }

    /// A users file with one `admin` user, its token kept in
    /// [`admin_token_path`](Self::admin_token_path): `/admin/*` needs it
    /// even here, while `/kv` and the Redis port stay open on loopback
    /// (`anonymous = "write"`).
    fn ensure_admin(&self) -> Result<(), LocalError> {
        let users = self.dir.join("users.toml");
        if users.exists() {
            return Ok(());
        }
        let token = crate::auth::add_user(&users, "admin", crate::auth::Role::Admin)?;
        crate::tls::certs::write_private(&self.admin_token_path(), &format!("{token}\n"))?;
        Ok(())
    }

    fn config_text(&self, me: usize, engine: &str) -> String {
        let mut text = format!(
            "cluster = \"dev\"\nnode_id = \"n{me}\"\ndata_dir = {:?}\n\n[storage]\nengine = {engine:?}\n\n\
             [tls]\nca = \"certs/ca.pem\"\ncert = \"certs/n{me}.pem\"\nkey = \"certs/n{me}.key\"\n\n\
             [auth]\nusers = \"users.toml\"\nanonymous = \"write\"\n\n",
            self.dir.join(format!("n{me}"))
        );
        for (i, ports) in (1..).zip(&self.ports) {
            text.push_str(&format!(
                "[[nodes]]\nid = \"n{i}\"\naddr = \"127.0.0.1:{}\"\nhttp = \"127.0.0.1:{}\"\n\
                 resp = \"127.0.0.1:{}\"\n\n",
                ports.peer, ports.http, ports.resp
            ));
        }
        // The default N = 3 needs three nodes; smaller clusters keep every
        // copy on what there is.
        if self.len() < 3 {
            let n = self.len();
            let quorum = n.min(2);
            text.push_str(&format!(
                "[replication]\nn = {n}\nr = {quorum}\nw = {quorum}\n"
            ));
        }
        text
    }

    fn spawn(&mut self, i: usize) -> Result<(), LocalError> {
        let node = format!("n{i}");
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.log_path(i))
            .map_err(|source| LocalError::Spawn {
                node: node.clone(),
                source,
            })?;
        let child = Command::new(&self.program)
            .args(["node", "--config"])
            .arg(self.config_path(i))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| LocalError::Spawn { node, source })?;
        self.children[i - 1] = Some(child);
        Ok(())
    }

    /// Wait until every running node accepts HTTP connections (it binds
    /// its HTTP port last, once its store and transport are up), or report
    /// the first node that exited, with the end of its log.
    pub async fn wait_until_up(&mut self, limit: Duration) -> Result<(), LocalError> {
        let deadline = Instant::now() + limit;
        for i in 1..=self.len() {
            let node = format!("n{i}");
            // A killed node (no child) is not waited for.
            while let Some(child) = self.children[i - 1].as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.children[i - 1] = None;
                    let log = tail(&self.log_path(i), 10);
                    return Err(LocalError::Exited { node, status, log });
                }
                if tokio::net::TcpStream::connect(self.http_addr(i))
                    .await
                    .is_ok()
                {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(LocalError::Timeout { node, limit });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// SIGKILL node `i` (no clean shutdown, like a crash) and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i - 1].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Nodes that exited since the last call, with how (each reported once:
    /// it is reaped and counts as killed).
    pub fn exited(&mut self) -> Vec<(usize, std::process::ExitStatus)> {
        let mut gone = Vec::new();
        for (i, slot) in (1..).zip(self.children.iter_mut()) {
            let status = slot
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = status {
                *slot = None;
                gone.push((i, status));
            }
        }
        gone
    }

    /// The command that starts node `i` again by hand.
    pub fn restart_command(&self, i: usize) -> String {
        let program = self.program.display();
        format!("{program} node --config {}", self.config_path(i).display())
    }

    /// Start a killed node `i` again with its config and data; follow with
    /// [`wait_until_up`](Self::wait_until_up).
    pub fn restart(&mut self, i: usize) -> Result<(), LocalError> {
        self.kill(i);
        self.spawn(i)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in self.children.iter().flatten() {
            // SIGTERM lets each node finish its batch and close its store.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
        for (i, child) in (1..).zip(self.children.iter_mut()) {
            let Some(child) = child else { continue };
            for _ in 0..50 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                eprintln!("n{i} did not stop in 5 s; killed");
            }
            let _ = child.wait();
        }
    }
}

/// Ports for `count` local nodes, each free when picked (a node binds it a
/// moment later, so another process could take it first: then that node
/// exits and [`LocalCluster::wait_until_up`] says so).
pub fn free_ports(count: usize) -> Result<Vec<LocalPorts>, LocalError> {
    let listeners = (0..3 * count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(LocalError::Ports)?;
    let ports = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(LocalError::Ports)?;
    Ok(ports
        .chunks(3)
        .map(|three| LocalPorts {
            http: three[0],
            peer: three[1],
            resp: three[2],
        })
        .collect())
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// In a program that starts itself as the nodes of a [`LocalCluster`]:
/// when this process is one of them (its arguments are exactly `node
/// --config FILE`), run the node until SIGINT or SIGTERM and give the exit
/// code; `None` in the program proper.
pub fn run_if_node_process() -> Option<ExitCode> {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [node, flag, config] = args.as_slice() else {
        return None;
    };
    if node != "node" || flag != "--config" {
        return None;
    }
    let served = tokio::runtime::Runtime::new()
        .map_err(ServerError::from)
        .and_then(|runtime| runtime.block_on(run_node(Path::new(config), Vec::new(), None)));
    Some(match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("node failed: {e}");
            ExitCode::FAILURE
        }
    })
}

/// Run a node from its config file until SIGINT or SIGTERM, then stop it
/// cleanly. `join`: seed addresses given on the command line, added to the
/// config's; `replace`: the dead member it replaces, if any (see
/// [`NodeConfig::with_replace`]).
pub async fn run_node(
    config: &Path,
    join: Vec<SocketAddr>,
    replace: Option<String>,
) -> Result<(), ServerError> {
    let config = NodeConfig::load(config)?
        .with_seeds(join, config)?
        .with_replace(replace, config)?;
    crate::run(config, shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM, so the node can stop cleanly.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
}
