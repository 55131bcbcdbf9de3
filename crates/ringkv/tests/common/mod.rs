//! Shared harness for the end-to-end tests: real `ringkv node` processes on
//! loopback, driven over HTTP. Every node also listens for the Redis
//! protocol ([`Cluster::resp_addr`]).
//!
//! Nodes are numbered from 1 like their ids: node `i` is `n{i}`. Every node
//! runs with `fault_injection = true` (so links can be cut). [`Cluster::start`]
//! gives nodes a short quorum timeout, so failure tests finish in a second or
//! two; [`Cluster::start_patient`] a long one, for tests that count exactly;
//! [`Cluster::start_with`] adds config sections (e.g. `[anti_entropy]`).
//! [`Cluster::join`] adds a node to a running cluster through a seed.
//!
//! Dropping a [`Cluster`] SIGKILLs every node; when the test is failing it
//! then prints the end of every node's log. Set `RINGKV_E2E_KEEP=1` to keep
//! the configs, data and logs of every cluster instead of deleting them.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

pub mod browser;
pub mod netns;
pub mod redis;
pub mod users;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use reqwest::header::HeaderMap;
use reqwest::Method;
use ringkv_core::ring::{Ring, RingMember};
use ringkv_core::siblings::SiblingSet;
use ringkv_core::version::CausalContext;
use ringkv_core::NodeId;
use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Quorum wait (`request_timeout_ms`) of [`Cluster::start`]: short, so
/// tests that wait out a dead or cut-off replica finish quickly.
pub const REQUEST_TIMEOUT_MS: u64 = 1000;
/// Quorum wait of [`Cluster::start_patient`], for tests that count exactly:
/// a node that forwarded a request and gets no answer within this (plus a
/// margin) retries with the next replica, which on an overloaded machine can
/// apply one write twice (a duplicate sibling, never a lost one).
pub const PATIENT_TIMEOUT_MS: u64 = 4000;
/// Bound on any single HTTP request a test makes.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a node (or a dev cluster) coming up.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// The HTTP header carrying the causal context.
pub const CONTEXT_HEADER: &str = "x-ringkv-context";
/// Replication factor of test clusters (capped by their size).
pub const N: usize = 3;
const VNODES: u32 = 128;

/// The ringkv binary under test.
pub fn ringkv_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ringkv")
}

/// A client that never goes through a proxy and never waits forever.
pub fn http_client() -> reqwest::Client {
    http_client_with_token(None)
}

/// Like [`http_client`], sending `token` as `Authorization: Bearer` on
/// every request.
pub fn http_client_with_token(token: Option<&str>) -> reqwest::Client {
    netns::client_builder(token)
        .timeout(HTTP_TIMEOUT)
        .build()
        .expect("http client")
}

/// Ports handed out in this test process, never handed out twice (tests of
/// one binary run in parallel and each picks its own).
static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// `count` distinct free loopback ports. They are free when picked; a node
/// binds them a moment later (start retries with fresh ports if one was
/// taken in between).
pub fn free_ports(count: usize) -> Vec<u16> {
    let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < count {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if taken.insert(port) {
            ports.push(port);
        }
        held.push(listener); // Held until all are picked, so none repeats.
    }
    ports
}

/// `count` consecutive free loopback ports (for `ringkv dev`'s base ports).
pub fn free_consecutive_ports(count: u16) -> u16 {
    let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    for _ in 0..100 {
        let first = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let base = first.local_addr().expect("local addr").port();
        if u32::from(base) + u32::from(count) > 65535 {
            continue;
        }
        let ports: Vec<u16> = (base..base + count).collect();
        if ports.iter().any(|p| taken.contains(p)) {
            continue;
        }
        let rest: Vec<_> = ports[1..]
            .iter()
            .map(|p| TcpListener::bind(("127.0.0.1", *p)))
            .collect();
        if rest.iter().all(Result::is_ok) {
            taken.extend(ports);
            return base;
        }
    }
    panic!("found no {count} consecutive free loopback ports");
}

/// An HTTP answer, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value, when present and text.
    pub fn header(&self, name: &str) -> Option<String> {
        let value = self.headers.get(name)?;
        value.to_str().ok().map(String::from)
    }

    /// The raw causal context header.
    pub fn context(&self) -> Option<String> {
        self.headers
            .get(CONTEXT_HEADER)
            .map(|v| v.to_str().expect("context header is ASCII").to_string())
    }

    /// The causal context, decoded (panics when missing or invalid).
    pub fn clock(&self) -> CausalContext {
        let ctx = self
            .context()
            .unwrap_or_else(|| panic!("no context in {self:?}"));
        ringkv_core::context::decode(&ctx).expect("context decodes")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// The siblings of a JSON answer (300, or 200 with Accept: JSON).
    pub fn siblings(&self) -> Vec<Sibling> {
        let json = self.json();
        json["siblings"]
            .as_array()
            .unwrap_or_else(|| panic!("no siblings in {json}"))
            .iter()
            .map(|s| Sibling {
                value: BASE64
                    .decode(s["value"].as_str().expect("value"))
                    .expect("value is base64"),
                timestamp: s["timestamp"].as_u64().expect("timestamp"),
                dot: s["dot"].as_str().expect("dot").to_string(),
            })
            .collect()
    }

    /// Panics with the answer unless the status is `status`.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status,
            status,
            "unexpected answer: {} {}",
            self.status,
            self.text()
        );
        self
    }
}

/// One version in a JSON answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sibling {
    pub value: Vec<u8>,
    pub timestamp: u64,
    pub dot: String,
}

impl Sibling {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

pub use ringkv_client::encode_key;

/// `/kv/{key}`, the key percent-encoded.
pub fn key_path(key: &str) -> String {
    format!("/kv/{}", encode_key(key))
}

/// Any HTTP request with `http`; `url` is absolute. A transport error
/// (refused, reset, timed out) is returned, not a panic.
pub async fn send(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<Resp, reqwest::Error> {
    let mut builder = http.request(method, url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if let Some(body) = body {
        builder = builder.body(body);
    }
    let response = builder.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await?.to_vec();
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// The ring of members n1..n{n_nodes}, built exactly as the nodes build it.
pub fn ring(n_nodes: usize) -> Ring {
    ring_with_vnodes(n_nodes, VNODES)
}

/// Like [`ring`], for nodes configured with `vnodes` tokens each.
pub fn ring_with_vnodes(n_nodes: usize, vnodes: u32) -> Ring {
    let members = (1..=n_nodes).map(|i| RingMember::new(NodeId::new(format!("n{i}"))));
    Ring::with_members(members, vnodes)
}

/// The `ring_fingerprint` that nodes whose ring is n1..n{n_nodes} report.
pub fn ring_fingerprint(n_nodes: usize) -> String {
    format!("{:016x}", ring(n_nodes).fingerprint())
}

/// The preference list of `key` in a cluster of `n_nodes` nodes, as node
/// numbers, coordinator first — computed exactly as the nodes do.
pub fn preference_list(n_nodes: usize, key: &str) -> Vec<usize> {
    ring(n_nodes)
        .preference_list(key.as_bytes(), N.min(n_nodes))
        .iter()
        .map(|id| id.as_str()[1..].parse().expect("node ids are n<number>"))
        .collect()
}

/// The first key `{prefix}{k}` whose preference list satisfies `want`.
pub fn find_key(n_nodes: usize, prefix: &str, want: impl Fn(&[usize]) -> bool) -> String {
    (0..100_000)
        .map(|k| format!("{prefix}{k}"))
        .find(|key| want(&preference_list(n_nodes, key)))
        .expect("some key fits")
}

/// `count` distinct keys coordinated by node `i`.
pub fn keys_coordinated_by(n_nodes: usize, i: usize, prefix: &str, count: usize) -> Vec<String> {
    (0..100_000)
        .map(|k| format!("{prefix}{k}"))
        .filter(|key| preference_list(n_nodes, key)[0] == i)
        .take(count)
        .collect()
}

/// Poll `probe` every 100 ms until it answers `Ok`, and answer that; after
/// `limit`, panic naming `what`, the limit and the last `Err`.
pub async fn eventually<T>(
    limit: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => {
                panic!("not within {limit:?}: {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Starts `ringkv node` as a one-node `n1` with its data in `dir/data`,
/// `head` (more top-level keys, then sections; paths relative to `dir`)
/// and its `[[nodes]]` entry on free ports; the node must refuse to start.
/// Answers its stderr.
pub fn refused_start(dir: &Path, head: &str) -> String {
    let ports = free_ports(2);
    let config = format!(
        "node_id = \"n1\"\ndata_dir = {:?}\n{head}\n\
         [[nodes]]\nid = \"n1\"\naddr = \"127.0.0.1:{}\"\nhttp = \"127.0.0.1:{}\"\n",
        dir.join("data"),
        ports[0],
        ports[1]
    );
    let path = dir.join("n1.toml");
    std::fs::write(&path, config).expect("write config");
    let out = std::process::Command::new(ringkv_bin())
        .args(["node", "--config"])
        .arg(&path)
        .output()
        .expect("run ringkv node");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "the node started: {stderr}");
    stderr
}

/// Run the `ringkv` CLI with `args` (no proxy from the environment in the
/// way); panics unless it succeeds within `limit`, and answers its stdout.
pub async fn run_cli(args: &[&str], limit: Duration) -> String {
    let output = cli_output(args, limit).await;
    assert!(
        output.status.success(),
        "ringkv {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Like [`run_cli`], answering how it ended whether it succeeded or not
/// (panics only when it does not end within `limit`).
pub async fn cli_output(args: &[&str], limit: Duration) -> std::process::Output {
    let mut command = tokio::process::Command::new(ringkv_bin());
    command
        .args(args)
        .env_remove("RINGKV_NODE")
        .env_remove("RINGKV_TOKEN")
        .env_remove("RINGKV_CACERT")
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .kill_on_drop(true);
    for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        command.env_remove(var);
    }
    tokio::time::timeout(limit, command.output())
        .await
        .unwrap_or_else(|_| panic!("ringkv {args:?} did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("cannot run ringkv {args:?}: {e}"))
}

/// How a joining node learns its seed.
#[derive(Clone, Copy, Debug)]
pub enum SeedVia {
    /// `seeds = [...]` in its config.
    Config,
    /// `ringkv node --join ADDR` on its command line.
    Flag,
}

/// The tail of a log file.
/// Wait until every thread of process `pid` is stopped: `kill` returns
/// once the signal is queued, and on a loaded machine a thread still
/// running could otherwise take in a request sent right after (CI saw a
/// "paused" node answer an increment).
fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let stopped = || -> bool {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return true;
        };
        tasks.flatten().all(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            matches!(state, Some('T' | 't') | None)
        })
    };
    while !stopped() {
        assert!(Instant::now() < deadline, "process {pid} did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

struct NodeProc {
    http: u16,
    peer: u16,
    /// Redis protocol.
    resp: u16,
    config: PathBuf,
    log: PathBuf,
    /// Extra `ringkv node` arguments (`--join ADDR`), kept for restarts.
    args: Vec<String>,
    child: Option<Child>,
}

/// A cluster of real node processes on loopback.
pub struct Cluster {
    request_timeout_ms: u64,
    /// Tokens per node (`vnodes` of every node's config).
    vnodes: u32,
    /// Replication factor in every node's config: [`N`], capped by the
    /// cluster's size at start (nodes joining later get the same).
    replicas: usize,
    /// Appended to every node's config before its `[[nodes]]` list.
    extra_toml: String,
    /// More `[replication]` lines.
    extra_replication: String,
    /// Removed on drop unless `RINGKV_E2E_KEEP` is set.
    dir: Option<tempfile::TempDir>,
    /// Where the configs, data and logs of the current start attempt live.
    root: PathBuf,
    nodes: Vec<NodeProc>,
    http: reqwest::Client,
}

impl Cluster {
    /// Start `n` nodes (ids n1..nN) with a short quorum timeout and wait
    /// until every one answers.
    pub async fn start(n: usize) -> Cluster {
        Self::start_with_timeout(n, REQUEST_TIMEOUT_MS).await
    }

    /// Like [`Cluster::start`], with a quorum timeout that load cannot hit.
    pub async fn start_patient(n: usize) -> Cluster {
        Self::start_with_timeout(n, PATIENT_TIMEOUT_MS).await
    }

    pub async fn start_with_timeout(n: usize, request_timeout_ms: u64) -> Cluster {
        Self::start_configured(n, request_timeout_ms, "").await
    }

    /// Like [`Cluster::start`], with `extra_toml` (whole config sections,
    /// e.g. `"[anti_entropy]\nenabled = false\n"`) added to every node's
    /// config.
    pub async fn start_with(n: usize, extra_toml: &str) -> Cluster {
        Self::start_configured(n, REQUEST_TIMEOUT_MS, extra_toml).await
    }

    pub async fn start_configured(n: usize, request_timeout_ms: u64, extra_toml: &str) -> Cluster {
        Self::start_full(n, request_timeout_ms, VNODES, "", extra_toml, None).await
    }

    /// Like [`Cluster::start_with`] for nodes with client authentication
    /// (`[auth]` in `extra_toml`): every request the harness makes carries
    /// `admin_token` (requests made with [`send`] and a client of the
    /// test's own carry what the test gives them).
    pub async fn start_with_token(n: usize, extra_toml: &str, admin_token: &str) -> Cluster {
        let token = Some(admin_token);
        Self::start_full(n, REQUEST_TIMEOUT_MS, VNODES, "", extra_toml, token).await
    }

    /// Like [`Cluster::start`], with more `[replication]` settings
    /// (`key = value` lines; every node gets the same).
    pub async fn start_with_replication(n: usize, replication: &str) -> Cluster {
        Self::start_full(n, REQUEST_TIMEOUT_MS, VNODES, replication, "", None).await
    }

    /// Like [`Cluster::start_with`], with `vnodes` tokens per node.
    pub async fn start_with_vnodes(n: usize, vnodes: u32, extra_toml: &str) -> Cluster {
        Self::start_full(n, REQUEST_TIMEOUT_MS, vnodes, "", extra_toml, None).await
    }

    async fn start_full(
        n: usize,
        request_timeout_ms: u64,
        vnodes: u32,
        replication: &str,
        extra_toml: &str,
        token: Option<&str>,
    ) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("ringkv-e2e-")
            .tempdir()
            .expect("tempdir");
        let mut cluster = Cluster {
            request_timeout_ms,
            vnodes,
            replicas: N.min(n),
            extra_toml: extra_toml.to_string(),
            extra_replication: replication.to_string(),
            root: dir.path().to_path_buf(),
            dir: Some(dir),
            nodes: Vec::new(),
            http: http_client_with_token(token),
        };
        for attempt in 1..=3 {
            match cluster.try_start(n, attempt).await {
                Ok(()) => return cluster,
                // A picked port was grabbed before the node bound it: retry.
                Err(e) if attempt < 3 && e.contains("cannot listen") => {
                    eprintln!("cluster start attempt {attempt} failed, retrying: {e}");
                    cluster.kill_all();
                }
                Err(e) => panic!("cluster did not start: {e}"),
            }
        }
        unreachable!()
    }

    async fn try_start(&mut self, n: usize, attempt: usize) -> Result<(), String> {
        let ports = free_ports(3 * n);
        self.root = self
            .dir
            .as_ref()
            .expect("tempdir")
            .path()
            .join(format!("attempt{attempt}"));
        std::fs::create_dir_all(&self.root).map_err(|e| e.to_string())?;
        self.nodes = (1..=n)
            .zip(ports.chunks(3))
            .map(|(i, ports)| self.new_node(i, ports))
            .collect();
        let everyone: Vec<usize> = (1..=n).collect();
        for i in 1..=n {
            let text = self.config_text(i, &everyone, &[]);
            std::fs::write(&self.nodes[i - 1].config, text).map_err(|e| e.to_string())?;
        }
        for i in 1..=n {
            self.spawn(i);
        }
        for i in 1..=n {
            self.wait_up(i).await?;
        }
        self.settle().await;
        Ok(())
    }

    /// Node `i` on `ports`: HTTP, inter-node and Redis protocol.
    fn new_node(&self, i: usize, ports: &[u16]) -> NodeProc {
        NodeProc {
            http: ports[0],
            peer: ports[1],
            resp: ports[2],
            config: self.root.join(format!("n{i}.toml")),
            log: self.root.join(format!("n{i}.log")),
            args: Vec::new(),
            child: None,
        }
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.root.join(format!("n{i}-data"))
    }

    /// Node `me`'s config: `[[nodes]]` lists `members`, `seeds` the
    /// inter-node addresses to join through.
    fn config_text(&self, me: usize, members: &[usize], seeds: &[SocketAddr]) -> String {
        let n = self.replicas;
        let quorum = n.min(2);
        let data_dir = self.data_dir(me);
        let seeds = match seeds {
            [] => String::new(),
            _ => {
                let quoted: Vec<String> = seeds.iter().map(|a| format!("\"{a}\"")).collect();
                format!("seeds = [{}]\n", quoted.join(", "))
            }
        };
        let mut text = format!(
            "cluster = \"e2e\"\ninsecure = true\nnode_id = \"n{me}\"\ndata_dir = {:?}\n{seeds}\
             fault_injection = true\n\n\
             [storage]\nengine = \"fjall\"\n\n\
             [replication]\nn = {n}\nr = {quorum}\nw = {quorum}\nvnodes = {}\n\
             request_timeout_ms = {}\n{}\n\n",
            data_dir.to_str().expect("utf-8 temp path"),
            self.vnodes,
            self.request_timeout_ms,
            self.extra_replication,
        );
        if !self.extra_toml.is_empty() {
            text.push_str(&self.extra_toml);
            text.push_str("\n\n");
        }
        for &i in members {
            let node = self.node(i);
            text.push_str(&format!(
                "[[nodes]]\nid = \"n{i}\"\naddr = \"127.0.0.1:{}\"\nhttp = \"127.0.0.1:{}\"\n\
                 resp = \"127.0.0.1:{}\"\n\n",
                node.peer, node.http, node.resp
            ));
        }
        text
    }

    /// Start a new node (the next number) that joins the running cluster
    /// through node `seed`, its config listing only itself, and wait until
    /// it answers. Answers its number.
    pub async fn join(&mut self, seed: usize) -> usize {
        self.join_via(seed, SeedVia::Config).await
    }

    /// Like [`Cluster::join`], naming the seed as `via` says.
    pub async fn join_via(&mut self, seed: usize, via: SeedVia) -> usize {
        let seed = self.peer_addr(seed);
        let i = self.nodes.len() + 1;
        for attempt in 1..=3 {
            let mut node = self.new_node(i, &free_ports(3));
            let config_seeds = match via {
                SeedVia::Config => vec![seed],
                SeedVia::Flag => {
                    node.args = vec!["--join".into(), seed.to_string()];
                    Vec::new()
                }
            };
            self.nodes.push(node);
            let text = self.config_text(i, &[i], &config_seeds);
            std::fs::write(&self.node(i).config, text).expect("write config");
            self.spawn(i);
            match self.wait_up(i).await {
                Ok(()) => return i,
                // A picked port was taken before the node bound it: retry
                // from scratch.
                Err(e) if attempt < 3 && e.contains("cannot listen") => {
                    eprintln!("n{i} join attempt {attempt} failed, retrying: {e}");
                    if self.is_alive(i) {
                        self.kill(i);
                    }
                    self.nodes.pop();
                    let _ = std::fs::remove_dir_all(self.data_dir(i));
                }
                Err(e) => panic!("n{i} did not start: {e}"),
            }
        }
        unreachable!()
    }

    /// Start a new node (the next number) joining through node `seed`,
    /// its config passed through `edit` first, without waiting for it (it
    /// may be meant to exit). Answers its number.
    pub fn spawn_joiner(&mut self, seed: usize, edit: impl FnOnce(String) -> String) -> usize {
        let seed = self.peer_addr(seed);
        let i = self.nodes.len() + 1;
        self.nodes.push(self.new_node(i, &free_ports(3)));
        let text = edit(self.config_text(i, &[i], &[seed]));
        std::fs::write(&self.node(i).config, text).expect("write config");
        self.spawn(i);
        i
    }

    /// Start a new node (the next number) with `ringkv node --join SEED
    /// --replace n{dead}`, its config listing only itself, without waiting
    /// for it (it may be meant to exit: a live `dead` is refused). Answers
    /// its number.
    pub fn spawn_replacement(&mut self, seed: usize, dead: usize) -> usize {
        let seed = self.peer_addr(seed);
        let i = self.nodes.len() + 1;
        let mut node = self.new_node(i, &free_ports(3));
        node.args = vec![
            "--join".into(),
            seed.to_string(),
            "--replace".into(),
            format!("n{dead}"),
        ];
        self.nodes.push(node);
        let text = self.config_text(i, &[i], &[]);
        std::fs::write(&self.node(i).config, text).expect("write config");
        self.spawn(i);
        i
    }

    /// Rewrite node `i`'s config through `edit` (for its next start).
    pub fn edit_config(&self, i: usize, edit: impl FnOnce(String) -> String) {
        let path = &self.node(i).config;
        let text = std::fs::read_to_string(path).expect("read config");
        std::fs::write(path, edit(text)).expect("write config");
    }

    /// Start the process of a stopped node `i` without waiting for it (it
    /// may be meant to exit: see [`Cluster::wait_exit`]).
    pub fn spawn_again(&mut self, i: usize) {
        self.spawn(i);
    }

    fn node(&self, i: usize) -> &NodeProc {
        assert!(i >= 1 && i <= self.nodes.len(), "no node n{i}");
        &self.nodes[i - 1]
    }

    fn node_mut(&mut self, i: usize) -> &mut NodeProc {
        assert!(i >= 1 && i <= self.nodes.len(), "no node n{i}");
        &mut self.nodes[i - 1]
    }

    fn spawn(&mut self, i: usize) {
        let node = self.node_mut(i);
        assert!(node.child.is_none(), "n{i} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("open node log");
        let child = Command::new(ringkv_bin())
            .arg("node")
            .arg("--config")
            .arg(&node.config)
            .args(&node.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start n{i}: {e}"));
        node.child = Some(child);
    }

    /// Poll `/status` until it answers; fail early if the process exited.
    async fn wait_up(&mut self, i: usize) -> Result<(), String> {
        let url = self.url(i, "/status");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let node = self.node_mut(i);
            if let Some(child) = node.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    node.child = None;
                    return Err(format!("n{i} exited ({status}):\n{}", tail(&node.log, 20)));
                }
            }
            let probe = self
                .http
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if probe.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "n{i} did not answer /status within {STARTUP_TIMEOUT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn http_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.node(i).http))
    }

    /// Redis protocol address of node `i`.
    pub fn resp_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.node(i).resp))
    }

    /// Inter-node (peer) address of node `i`.
    pub fn peer_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.node(i).peer))
    }

    /// The HTTP base address of node `i`, `http://127.0.0.1:PORT` (stable
    /// across restarts).
    pub fn base_url(&self, i: usize) -> String {
        format!("http://{}", self.http_addr(i))
    }

    pub fn url(&self, i: usize, path: &str) -> String {
        format!("http://{}{path}", self.http_addr(i))
    }

    pub fn log_path(&self, i: usize) -> &Path {
        &self.node(i).log
    }

    /// Preference list of `key` in this cluster, coordinator first.
    pub fn preference_list(&self, key: &str) -> Vec<usize> {
        preference_list(self.len(), key)
    }

    pub fn coordinator_of(&self, key: &str) -> usize {
        self.preference_list(key)[0]
    }

    /// SIGKILL node `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        let node = self.node_mut(i);
        let mut child = node
            .child
            .take()
            .unwrap_or_else(|| panic!("n{i} is not running"));
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Send `signal` (`STOP`, `CONT`, …) to node `i`'s process: `STOP`
    /// pauses it with its sockets open — the kernel still accepts
    /// connections and takes in requests, which nobody answers.
    pub fn signal(&self, i: usize, signal: &str) {
        let pid = self
            .node(i)
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("n{i} is not running"))
            .id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} n{i} failed");
        if signal == "STOP" {
            wait_stopped(pid);
        }
    }

    /// Wait until node `i`'s process exits by itself (it must not be
    /// killed); panics after `limit`.
    pub async fn wait_exit(&mut self, i: usize, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let node = self.node_mut(i);
        let child = node.child.as_mut().expect("node is running");
        loop {
            if let Some(status) = child.try_wait().expect("wait for node") {
                node.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "n{i} did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Start node `i` again with the same config and data, and wait for it.
    pub async fn restart(&mut self, i: usize) {
        self.spawn(i);
        if let Err(e) = self.wait_up(i).await {
            panic!("n{i} did not come back: {e}");
        }
        self.settle().await;
    }

    /// Wait until no running node marks another running node unreachable.
    /// A node that came up before its peers (anti-entropy talks to them at
    /// once) marks them so, and then skips them as coordinators for a
    /// second, which would make exact forwarding counts and timings depend
    /// on start-up order. The marks are visible in `/status`.
    async fn settle(&self) {
        let running: Vec<usize> = (1..=self.nodes.len())
            .filter(|i| self.nodes[i - 1].child.is_some())
            .collect();
        let names: Vec<String> = running.iter().map(|i| format!("n{i}")).collect();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let mut marked = Vec::new();
            for &i in &running {
                let status = self.status(i).await;
                let peers = status["unreachable_peers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                marked.extend(
                    peers
                        .iter()
                        .filter_map(|p| p.as_str())
                        .filter(|p| names.iter().any(|n| n == p))
                        .map(|p| format!("n{i} marks {p}")),
                );
            }
            if marked.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "running nodes still mark each other unreachable: {marked:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// True while node `i`'s process runs.
    pub fn is_alive(&mut self, i: usize) -> bool {
        match self.node_mut(i).child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    async fn link(&self, a: usize, b: usize, action: &str) {
        for (from, to) in [(a, b), (b, a)] {
            self.link_one_way(from, to, action).await;
        }
    }

    /// `action` (`cut` or `heal`) on node `from`'s side of its link to
    /// `to` only. A cut on either side silences the link both ways; a node
    /// restarts with all its links healed.
    pub async fn link_one_way(&self, from: usize, to: usize, action: &str) {
        let path = format!("/admin/links/n{to}/{action}");
        let resp = self.request(Method::POST, from, &path, &[], None).await;
        assert_eq!(resp.status, 204, "{action} n{from}->n{to}: {}", resp.text());
    }

    /// Silently drop all traffic between nodes `a` and `b`, both ways.
    pub async fn cut(&self, a: usize, b: usize) {
        self.link(a, b, "cut").await;
    }

    pub async fn heal(&self, a: usize, b: usize) {
        self.link(a, b, "heal").await;
    }

    /// Any request to node `i`; `path` includes the query.
    pub async fn request(
        &self,
        method: Method,
        i: usize,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        self.try_request(method.clone(), i, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path} on n{i} failed: {e}"))
    }

    /// Like [`Cluster::request`], but a transport error is returned.
    pub async fn try_request(
        &self,
        method: Method,
        i: usize,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Resp, reqwest::Error> {
        send(&self.http, method, &self.url(i, path), headers, body).await
    }

    /// PUT with an optional context and `?w=`.
    pub async fn put_with(
        &self,
        i: usize,
        key: &str,
        value: impl Into<Vec<u8>>,
        context: Option<&str>,
        w: Option<usize>,
    ) -> Resp {
        let body = Some(value.into());
        self.write(Method::PUT, i, key, context, w, body).await
    }

    /// A blind PUT with the default W.
    pub async fn put(&self, i: usize, key: &str, value: impl Into<Vec<u8>>) -> Resp {
        self.put_with(i, key, value, None, None).await
    }

    /// GET with an optional `?r=`; `json` asks for the JSON form.
    pub async fn get_with(&self, i: usize, key: &str, r: Option<usize>, json: bool) -> Resp {
        let mut path = key_path(key);
        if let Some(r) = r {
            path.push_str(&format!("?r={r}"));
        }
        let headers: &[(&str, &str)] = if json {
            &[("accept", "application/json")]
        } else {
            &[]
        };
        self.request(Method::GET, i, &path, headers, None).await
    }

    pub async fn get(&self, i: usize, key: &str) -> Resp {
        self.get_with(i, key, None, false).await
    }

    pub async fn delete_with(
        &self,
        i: usize,
        key: &str,
        context: Option<&str>,
        w: Option<usize>,
    ) -> Resp {
        self.write(Method::DELETE, i, key, context, w, None).await
    }

    /// A PUT or DELETE of `key` with an optional context and `?w=`.
    async fn write(
        &self,
        method: Method,
        i: usize,
        key: &str,
        context: Option<&str>,
        w: Option<usize>,
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut path = key_path(key);
        if let Some(w) = w {
            path.push_str(&format!("?w={w}"));
        }
        let headers: Vec<(&str, &str)> = context.map(|c| (CONTEXT_HEADER, c)).into_iter().collect();
        self.request(method, i, &path, &headers, body).await
    }

    pub async fn delete(&self, i: usize, key: &str) -> Resp {
        self.delete_with(i, key, None, None).await
    }

    /// Node `i`'s `/status` JSON.
    pub async fn status(&self, i: usize) -> serde_json::Value {
        self.request(Method::GET, i, "/status", &[], None)
            .await
            .expect(200)
            .json()
    }

    /// One counter of `stats` in node `i`'s `/status`.
    pub async fn stat(&self, i: usize, name: &str) -> u64 {
        let status = self.status(i).await;
        status["stats"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no stats.{name} in {status}"))
    }

    /// Node `i`'s view of the members (`members` of `/status`): id → status
    /// (`joining`, `up`, `suspect`, `down`, `leaving` or `left`).
    pub async fn member_statuses(&self, i: usize) -> BTreeMap<String, String> {
        let status = self.status(i).await;
        let members = status["members"]
            .as_array()
            .unwrap_or_else(|| panic!("no members in n{i}'s status: {status}"));
        members
            .iter()
            .map(|m| {
                let field = |name: &str| {
                    m[name]
                        .as_str()
                        .unwrap_or_else(|| panic!("member without {name}: {m}"))
                        .to_string()
                };
                (field("id"), field("status"))
            })
            .collect()
    }

    /// Node `i`'s own stored copy of `key` (`GET /admin/replica/{key}`),
    /// tombstones included; empty when it holds nothing.
    pub async fn replica(&self, i: usize, key: &str) -> SiblingSet {
        let path = format!("/admin/replica/{}", encode_key(key));
        let resp = self
            .request(Method::GET, i, &path, &[], None)
            .await
            .expect(200);
        serde_json::from_slice(&resp.body)
            .unwrap_or_else(|e| panic!("replica of {key} on n{i} ({e}): {}", resp.text()))
    }

    /// Start a forced anti-entropy repair on node `i` (`POST
    /// /admin/repair`); answers how many exchanges were queued.
    pub async fn start_repair(&self, i: usize) -> u64 {
        let resp = self
            .request(Method::POST, i, "/admin/repair", &[], None)
            .await
            .expect(200);
        resp.json()["exchanges"]
            .as_u64()
            .unwrap_or_else(|| panic!("no exchanges in {}", resp.text()))
    }

    /// Wait until node `i`'s forced repair has finished (every queued
    /// exchange done or failed in `anti_entropy.repair` of `/status`);
    /// panics after `limit`.
    pub async fn wait_repaired(&self, i: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.status(i).await;
            let progress = &status["anti_entropy"]["repair"];
            let count = |field: &str| progress[field].as_u64().unwrap_or(0);
            if progress.is_null() || count("done") + count("failed") >= count("total") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "n{i}'s repair did not finish within {limit:?}: {progress}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill_all(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        if std::thread::panicking() {
            for (i, node) in (1..).zip(&self.nodes) {
                eprintln!("----- n{i} log ({}) -----", node.log.display());
                eprintln!("{}", tail(&node.log, 40));
            }
        }
        if std::env::var_os("RINGKV_E2E_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("kept test cluster files in {}", dir.keep().display());
            }
        }
    }
}
