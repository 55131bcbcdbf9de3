//! Kernel-level faults for end-to-end tests and the fault benchmark: real
//! `ringkv node` processes, each in its own network namespace, so that
//! partitions are silent (iptables DROP, the peer's kernel sees nothing) and
//! TCP behaves as it does between machines — retransmission backoff, stuck
//! connections — which faults dropped above the kernel never show.
//!
//! Layout of one [`Hosts`] (names carry the test process's pid and a
//! counter, `TAG` = `{pid}x{counter}`):
//!
//! ```text
//!  root namespace (the test process)        namespace rkv-TAG-hub
//!  veth rkvTAG  10.A.B.254/24  <---------->  up0 ─┐
//!                                                 br0 (bridge)
//!  namespace rkv-TAG-n1: eth0 10.A.B.1/24 <-> h1 ─┤
//!  namespace rkv-TAG-n2: eth0 10.A.B.2/24 <-> h2 ─┘ ...
//! ```
//!
//! The bridge lives in a namespace of its own, not the root one, so the
//! host's firewall (Docker's `FORWARD DROP`, br_netfilter) never sees the
//! bridged traffic; the test process reaches every host through its own
//! veth into the bridge and is never part of a partition. `10.A.B.0/24` is
//! derived from the pid and counter (A in 200..250) and skipped when the
//! root namespace already routes it, so concurrent test processes do not
//! collide.
//!
//! Dropping a [`Hosts`] (also while panicking) deletes its namespaces,
//! bridge and veths; dropping a [`NsCluster`] first SIGKILLs its nodes
//! (paused ones too). Namespaces left by a test process that was itself
//! SIGKILLed are swept by the next [`Hosts::create`] (their pid is dead).
//!
//! Needs root and the `ip` (iproute2) and `iptables` commands: without
//! them [`Hosts::create`] panics with one sentence saying what to install
//! (`scripts/test` installs them), so the tests fail, not skip.
//!
//! Self-contained (std, reqwest, tempfile, tokio): the benchmark
//! `crates/ringkv/examples/fault_bench.rs` includes this file by path.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Prefix of every namespace this harness creates.
const PREFIX: &str = "rkv-";
/// Inter-node port of every node (each has its own address).
pub const PEER_PORT: u16 = 7000;
/// HTTP port of every node.
pub const HTTP_PORT: u16 = 8000;
/// Bound on a node coming up and the cluster settling.
pub const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// Hosts created by this process so far: part of every name.
static CREATED: AtomicU32 = AtomicU32::new(0);

/// Panic with one sentence unless this process can create namespaces and
/// firewall them: root, `ip` and `iptables`.
pub fn require_tools() {
    let install = "run the tests through scripts/test (it installs them) or \
                   `apt-get install -y iproute2 iptables`";
    assert!(
        is_root(),
        "the kernel fault tests create network namespaces and need root: run them as root"
    );
    for (tool, package) in [("ip", "iproute2"), ("iptables", "iptables")] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "the kernel fault tests need the `{tool}` command (package {package}): {install}"
        );
    }
}

/// Effective uid 0, read from `/proc/self/status` (no libc needed).
fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}

/// Run `program args`; panic with its stderr when it fails.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Run `program args` and answer its stdout, failures ignored (clean-up).
fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// SIGKILL every process in namespace `ns`, then delete it.
fn delete_namespace(ns: &str) {
    for pid in output("ip", &["netns", "pids", ns]).split_whitespace() {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

/// Delete namespaces of earlier test processes that died without cleaning
/// up (their names carry their pid, which no longer runs).
fn sweep_stale() {
    for line in output("ip", &["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('x').next().unwrap_or("");
        let dead = pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists();
        if dead {
            delete_namespace(name);
        }
    }
}

/// A /24 no route of the root namespace mentions yet, derived from `seed`.
fn free_subnet(seed: u32) -> (u8, u8) {
    let routes = output("ip", &["-4", "route", "show", "table", "all"]);
    (0..12_800)
        .map(|k| {
            let h = seed.wrapping_add(k) % 12_800;
            (200 + (h / 256) as u8, (h % 256) as u8)
        })
        .find(|(a, b)| !routes.contains(&format!("10.{a}.{b}.")))
        .expect("a free 10.x.y.0/24")
}

/// K hosts, each in its own network namespace on one bridge, reachable
/// from the test process. Hosts are numbered from 1 like node ids.
pub struct Hosts {
    tag: String,
    net: (u8, u8),
    count: usize,
    /// The root namespace's veth into the bridge.
    root_veth: String,
}

impl Hosts {
    /// Create `count` hosts (panics with what to install when it cannot).
    pub fn create(count: usize) -> Hosts {
        assert!((1..=250).contains(&count), "1..=250 hosts");
        require_tools();
        sweep_stale();
        let pid = std::process::id();
        let n = CREATED.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{pid}x{n}");
        let hosts = Hosts {
            net: free_subnet(pid.wrapping_mul(8).wrapping_add(n)),
            root_veth: format!("rkv{tag}"),
            tag,
            count,
        };
        hosts.build();
        hosts
    }

    /// The hub with its bridge, the test process's veth, then the hosts.
    /// Dropping `self` on a panic here removes what was made.
    fn build(&self) {
        let hub = self.hub();
        run("ip", &["netns", "add", &hub]);
        run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        run("ip", &["-n", &hub, "link", "set", "br0", "up"]);
        let veth = self.root_veth.as_str();
        let link = [
            "link",
            "add",
            veth,
            "type",
            "veth",
            "peer",
            "name",
            "up0",
            "netns",
            hub.as_str(),
        ];
        run("ip", &link);
        run(
            "ip",
            &["-n", &hub, "link", "set", "up0", "master", "br0", "up"],
        );
        let me = format!("{}/24", self.test_addr());
        run("ip", &["addr", "add", &me, "dev", veth]);
        run("ip", &["link", "set", veth, "up"]);
        for i in 1..=self.count {
            self.add_host(i);
        }
    }

    fn add_host(&self, i: usize) {
        let (hub, ns) = (self.hub(), self.ns(i));
        let port = format!("h{i}");
        run("ip", &["netns", "add", &ns]);
        run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        let link = [
            "link",
            "add",
            "eth0",
            "netns",
            ns.as_str(),
            "type",
            "veth",
            "peer",
            "name",
            port.as_str(),
            "netns",
            hub.as_str(),
        ];
        run("ip", &link);
        run(
            "ip",
            &["-n", &hub, "link", "set", &port, "master", "br0", "up"],
        );
        let addr = format!("{}/24", self.addr(i));
        run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// Namespace of host `i`.
    pub fn ns(&self, i: usize) -> String {
        assert!(i >= 1 && i <= self.count, "no host {i}");
        format!("{PREFIX}{}-n{i}", self.tag)
    }

    fn hub(&self) -> String {
        format!("{PREFIX}{}-hub", self.tag)
    }

    /// Address of host `i`.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        assert!(i >= 1 && i <= self.count, "no host {i}");
        Ipv4Addr::new(10, self.net.0, self.net.1, i as u8)
    }

    /// The test process's address on the bridge (never partitioned).
    pub fn test_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.net.0, self.net.1, 254)
    }

    /// A command run inside host `i`'s namespace.
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec"]).arg(self.ns(i)).arg(program);
        command
    }

    /// Silently drop every packet between hosts of `a` and hosts of `b`,
    /// both ways, as a cut cable does: each host's namespace DROPs what
    /// arrives from the other side (iptables INPUT). The sender's kernel
    /// sends normally and never hears back, so TCP retransmits with
    /// exponential backoff and connects time out — no RST, no ICMP.
    ///
    /// Not OUTPUT: a packet dropped there fails locally (EPERM), so TCP
    /// keeps new data queued and sends it on the application's next write
    /// instead of backing off, which hides the retransmission backoff a
    /// real partition causes (see [`Hosts::partition_dropping_output_too`]).
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        self.partition_in(a, b, &["INPUT"]);
    }

    /// Like [`Hosts::partition`], also DROPping on OUTPUT (each sender's
    /// kernel refuses to send): kept to compare with the first version of
    /// this harness, under which a heal looked instantaneous.
    pub fn partition_dropping_output_too(&self, a: &[usize], b: &[usize]) {
        self.partition_in(a, b, &["INPUT", "OUTPUT"]);
    }

    fn partition_in(&self, a: &[usize], b: &[usize], chains: &[&str]) {
        for (side, other) in [(a, b), (b, a)] {
            for &i in side {
                self.drop_from(i, other, chains);
            }
        }
    }

    /// Cut host `i` off from every other host (the test still reaches it).
    pub fn isolate(&self, i: usize) {
        let others: Vec<usize> = (1..=self.count).filter(|&j| j != i).collect();
        self.partition(&[i], &others);
    }

    /// One `iptables-restore` per host, so all its rules land at once.
    fn drop_from(&self, i: usize, others: &[usize], chains: &[&str]) {
        let mut rules = String::from("*filter\n");
        for &j in others {
            let peer = self.addr(j);
            for chain in chains {
                let dir = if *chain == "INPUT" { "-s" } else { "-d" };
                rules.push_str(&format!("-A {chain} {dir} {peer} -j DROP\n"));
            }
        }
        rules.push_str("COMMIT\n");
        let mut child = self
            .command(i, "iptables-restore")
            .args(["--noflush", "-w"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run iptables-restore");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(rules.as_bytes()).expect("write rules");
        drop(stdin);
        let out = child.wait_with_output().expect("iptables-restore");
        assert!(
            out.status.success(),
            "iptables-restore in {} failed: {}",
            self.ns(i),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// For every established TCP connection of host `i` to one of `peers`
    /// whose retransmission timer runs (data sent and not acknowledged),
    /// how long until the kernel retransmits next (from `ss`). A test can
    /// heal a partition when these are long, so the kernel would leave the
    /// connections silent for that long after the heal.
    pub fn retransmit_waits(&self, i: usize, peers: &[usize]) -> Vec<Duration> {
        let ns = self.ns(i);
        let out = output(
            "ip",
            &["netns", "exec", &ns, "ss", "-tnoH", "state", "established"],
        );
        let peers: Vec<String> = peers
            .iter()
            .map(|&j| format!("{}:", self.addr(j)))
            .collect();
        out.lines()
            .filter(|line| {
                let remote = line.split_whitespace().nth(3).unwrap_or("");
                peers.iter().any(|p| remote.starts_with(p.as_str()))
            })
            .filter_map(|line| line.split("timer:(on,").nth(1))
            .filter_map(|timer| parse_ss_time(timer.split(',').next()?))
            .collect()
    }

    /// Remove every partition (flush each host's filter rules).
    pub fn heal(&self) {
        for i in 1..=self.count {
            let ns = self.ns(i);
            run("ip", &["netns", "exec", &ns, "iptables", "-w", "-F"]);
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for i in 1..=self.count {
            delete_namespace(&self.ns(i));
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.root_veth])
            .stderr(Stdio::null())
            .status();
        delete_namespace(&self.hub());
    }
}

/// How [`NsCluster::start_on`] configures its nodes.
#[derive(Default)]
pub struct Setup<'a> {
    /// The last `joiners` nodes join through node 1 as a new machine does:
    /// their configs list only themselves, with node 1's inter-node address
    /// as their seed. They answer once started; whether they have joined is
    /// for the test to wait for.
    pub joiners: usize,
    /// Appended to every config (whole sections); `{id}` stands for the
    /// node's id (`certs/{id}.pem`).
    pub extra_toml: &'a str,
    /// `None`: the nodes run `insecure = true`. `Some(token)`: they run
    /// secure (`extra_toml` brings `[tls]` and `[auth]`), and every request
    /// of the harness carries this bearer token.
    pub token: Option<&'a str>,
}

/// An HTTP client that never goes through a proxy and sends `token` (if
/// any) as `Authorization: Bearer` on every request.
pub fn client_builder(token: Option<&str>) -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("token is ASCII");
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
}

/// One node process in its host's namespace.
struct NsNode {
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// The answer to one HTTP request, or why there was none, and how long it
/// took.
#[derive(Debug)]
pub struct Outcome {
    pub status: Option<u16>,
    pub body: Vec<u8>,
    pub error: Option<String>,
    pub took: Duration,
}

impl Outcome {
    /// A 2xx answer.
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// One line for assertion messages.
    pub fn describe(&self) -> String {
        let what = match (self.status, &self.error) {
            (Some(s), _) => format!("{s} {}", String::from_utf8_lossy(&self.body).trim()),
            (None, Some(e)) => format!("no answer: {e}"),
            (None, None) => "no answer".into(),
        };
        format!("{what} after {} ms", self.took.as_millis())
    }
}

/// A cluster of real `ringkv node` processes, node `i` on host `i` of its
/// own [`Hosts`], with default replication settings (N=3, R=2, W=2, 128
/// vnodes, 2 s quorum wait, so a forward waits 2.5 s) unless `extra_toml`
/// overrides them.
pub struct NsCluster {
    nodes: Vec<NsNode>,
    http: reqwest::Client,
    /// Configs, data and logs; `RINGKV_E2E_KEEP=1` keeps them.
    dir: Option<tempfile::TempDir>,
    /// Declared last: dropped after the nodes are killed.
    pub hosts: Hosts,
}

impl NsCluster {
    /// Start `count` nodes running `binary`, each in its own namespace,
    /// and wait until all answer and none marks another unreachable.
    /// `extra_toml` is appended to every config (whole sections).
    pub async fn start(binary: &Path, count: usize, extra_toml: &str) -> NsCluster {
        let setup = Setup {
            extra_toml,
            ..Setup::default()
        };
        Self::start_on(Hosts::create(count), binary, &setup).await
    }

    /// Like [`NsCluster::start`], one node per host of `hosts` (made first,
    /// so a test can issue certificates for their addresses), configured
    /// as `setup` says.
    pub async fn start_on(hosts: Hosts, binary: &Path, setup: &Setup<'_>) -> NsCluster {
        let count = hosts.len();
        assert!(setup.joiners < count, "node 1 is a seed, not a joiner");
        let dir = tempfile::Builder::new()
            .prefix("ringkv-netns-")
            .tempdir()
            .expect("tempdir");
        let mut cluster = NsCluster {
            nodes: Vec::new(),
            http: client_builder(setup.token).build().expect("http client"),
            dir: Some(dir),
            hosts,
        };
        let founders: Vec<usize> = (1..=count - setup.joiners).collect();
        for i in 1..=count {
            match founders.contains(&i) {
                true => cluster.write_config(i, setup, &founders, None),
                false => cluster.write_config(i, setup, &[i], Some(1)),
            }
        }
        for i in 1..=count {
            cluster.spawn(i, binary);
        }
        for i in 1..=count {
            cluster.wait_up(i).await;
        }
        cluster.settle().await;
        cluster
    }

    fn root(&self) -> &Path {
        self.dir.as_ref().expect("tempdir").path()
    }

    /// Node `me`'s config: `[[nodes]]` lists `members`, `seed` the node
    /// whose inter-node address it joins through.
    fn write_config(&mut self, me: usize, setup: &Setup, members: &[usize], seed: Option<usize>) {
        let data = self.root().join(format!("n{me}-data"));
        let seeds = match seed {
            Some(j) => format!("seeds = [\"{}:{PEER_PORT}\"]\n", self.hosts.addr(j)),
            None => String::new(),
        };
        let insecure = match setup.token {
            Some(_) => "",
            None => "insecure = true\n",
        };
        let extra_toml = setup.extra_toml.replace("{id}", &format!("n{me}"));
        let mut text = format!(
            "cluster = \"netns\"\n{insecure}node_id = \"n{me}\"\ndata_dir = {:?}\n{seeds}\n\
             [storage]\nengine = \"fjall\"\n\n{extra_toml}\n\n",
            data.to_str().expect("utf-8 temp path"),
        );
        for &i in members {
            let addr = self.hosts.addr(i);
            text.push_str(&format!(
                "[[nodes]]\nid = \"n{i}\"\naddr = \"{addr}:{PEER_PORT}\"\n\
                 http = \"{addr}:{HTTP_PORT}\"\n\n"
            ));
        }
        let config = self.root().join(format!("n{me}.toml"));
        std::fs::write(&config, text).expect("write config");
        let log = self.root().join(format!("n{me}.log"));
        self.nodes.push(NsNode {
            config,
            log,
            child: None,
        });
    }

    /// `ip netns exec` execs the node, so the child's pid is the node's.
    fn spawn(&mut self, i: usize, binary: &Path) {
        let node = &self.nodes[i - 1];
        let log = std::fs::File::create(&node.log).expect("create node log");
        let child = self
            .hosts
            .command(i, binary)
            .arg("node")
            .arg("--config")
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start n{i}: {e}"));
        self.nodes[i - 1].child = Some(child);
    }

    async fn wait_up(&mut self, i: usize) {
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            let node = &mut self.nodes[i - 1];
            let child = node.child.as_mut().expect("started");
            if let Ok(Some(status)) = child.try_wait() {
                panic!("n{i} exited ({status}):\n{}", tail(&node.log, 20));
            }
            let probe = self.get_path(i, "/status", Duration::from_secs(1)).await;
            if probe.ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "n{i} did not answer /status within {STARTUP_LIMIT:?}: {}",
                probe.describe()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until no node marks another unreachable (a node up before its
    /// peers marks them so for a while and skips them as coordinators).
    async fn settle(&self) {
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            let mut marked = BTreeSet::new();
            for i in 1..=self.len() {
                let status = self.status(i).await;
                for peer in status["unreachable_peers"].as_array().into_iter().flatten() {
                    marked.insert(format!("n{i} marks {peer}"));
                }
            }
            if marked.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nodes still mark each other unreachable: {marked:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// `http://ADDR:PORT{path}` of node `i`.
    pub fn url(&self, i: usize, path: &str) -> String {
        format!("http://{}:{HTTP_PORT}{path}", self.hosts.addr(i))
    }

    /// Node `i`'s `/status` JSON (panics unless it answers).
    pub async fn status(&self, i: usize) -> serde_json::Value {
        let out = self.get_path(i, "/status", Duration::from_secs(10)).await;
        assert!(out.ok(), "n{i} /status: {}", out.describe());
        serde_json::from_slice(&out.body).expect("status is JSON")
    }

    /// Any request to node `i`, bounded by `limit`; never panics.
    pub async fn call(
        &self,
        method: reqwest::Method,
        i: usize,
        path: &str,
        body: Option<Vec<u8>>,
        limit: Duration,
    ) -> Outcome {
        let start = Instant::now();
        let mut request = self.http.request(method, self.url(i, path)).timeout(limit);
        if let Some(body) = body {
            request = request.body(body);
        }
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                response.bytes().await.map(|b| (status, b.to_vec()))
            }
            Err(e) => Err(e),
        };
        let took = start.elapsed();
        match answer {
            Ok((status, body)) => Outcome {
                status: Some(status),
                body,
                error: None,
                took,
            },
            Err(e) => Outcome {
                status: None,
                body: Vec::new(),
                error: Some(format!("{e:?}")),
                took,
            },
        }
    }

    pub async fn get_path(&self, i: usize, path: &str, limit: Duration) -> Outcome {
        self.call(reqwest::Method::GET, i, path, None, limit).await
    }

    /// PUT `value` to `key` through node `i`, with `?w=` when given.
    pub async fn put(
        &self,
        i: usize,
        key: &str,
        value: &[u8],
        w: Option<usize>,
        limit: Duration,
    ) -> Outcome {
        let path = kv_path(key, "w", w);
        let body = Some(value.to_vec());
        self.call(reqwest::Method::PUT, i, &path, body, limit).await
    }

    /// GET `key` through node `i`, with `?r=` when given.
    pub async fn get(&self, i: usize, key: &str, r: Option<usize>, limit: Duration) -> Outcome {
        self.get_path(i, &kv_path(key, "r", r), limit).await
    }

    /// The pid of node `i`'s process.
    fn pid(&self, i: usize) -> String {
        let child = self.nodes[i - 1].child.as_ref();
        let child = child.unwrap_or_else(|| panic!("n{i} is not running"));
        child.id().to_string()
    }

    fn signal(&self, i: usize, signal: &str) {
        run("kill", &[signal, &self.pid(i)]);
    }

    /// SIGSTOP node `i`: its sockets stay open, it answers nothing.
    pub fn pause(&self, i: usize) {
        self.signal(i, "-STOP");
    }

    /// SIGCONT node `i`.
    pub fn resume(&self, i: usize) {
        self.signal(i, "-CONT");
    }

    /// SIGKILL node `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i - 1].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_path(&self, i: usize) -> &Path {
        &self.nodes[i - 1].log
    }
}

impl Drop for NsCluster {
    fn drop(&mut self) {
        for i in 1..=self.nodes.len() {
            self.kill(i);
        }
        if std::thread::panicking() {
            for (i, node) in (1..).zip(&self.nodes) {
                eprintln!("----- n{i} log ({}) -----", node.log.display());
                eprintln!("{}", tail(&node.log, 30));
            }
        }
        if std::env::var_os("RINGKV_E2E_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("kept netns cluster files in {}", dir.keep().display());
            }
        }
    }
}

/// `/kv/{key}` (keys here are plain ASCII) with `?{name}={value}`.
fn kv_path(key: &str, name: &str, value: Option<usize>) -> String {
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b)),
        "netns harness keys are plain: {key:?}"
    );
    match value {
        Some(v) => format!("/kv/{key}?{name}={v}"),
        None => format!("/kv/{key}"),
    }
}

/// A timer as `ss` prints it: `380ms`, `5.123ms` (5 s 123 ms), `12sec`,
/// `1min2sec`, `1min`.
fn parse_ss_time(text: &str) -> Option<Duration> {
    let (minutes, rest) = match text.split_once("min") {
        Some((m, rest)) => (m.parse::<u64>().ok()?, rest),
        None => (0, text),
    };
    let ms = if let Some((secs, ms)) = rest.split_once('.') {
        secs.parse::<u64>().ok()? * 1000 + ms.strip_suffix("ms")?.parse::<u64>().ok()?
    } else if let Some(secs) = rest.strip_suffix("sec") {
        secs.parse::<u64>().ok()? * 1000
    } else if let Some(ms) = rest.strip_suffix("ms") {
        ms.parse::<u64>().ok()?
    } else if rest.is_empty() {
        0
    } else {
        return None;
    };
    Some(Duration::from_millis(minutes * 60_000 + ms))
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
