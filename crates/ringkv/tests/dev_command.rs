//! `ringkv dev`: a local cluster that checks itself and stops cleanly.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NODES: u16 = 3;

/// A running `ringkv dev`. Dropping it makes sure neither it nor any node
/// it started outlives the test.
struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    http_base: u16,
    peer_base: u16,
    resp_base: u16,
    /// The node processes (children of `ringkv dev`), once known.
    node_pids: Vec<u32>,
    dir: tempfile::TempDir,
}

impl Dev {
    fn start() -> Dev {
        let dir = tempfile::Builder::new()
            .prefix("ringkv-dev-e2e-")
            .tempdir()
            .expect("tempdir");
        let http_base = common::free_consecutive_ports(NODES);
        let peer_base = common::free_consecutive_ports(NODES);
        let resp_base = common::free_consecutive_ports(NODES);
        let stderr = std::fs::File::create(dir.path().join("dev.stderr")).expect("stderr file");
        let mut command = Command::new(common::ringkv_bin());
        command
            .args(["dev", "--nodes", &NODES.to_string(), "--data-dir"])
            .arg(dir.path().join("cluster"))
            .args(["--http-base-port", &http_base.to_string()])
            .args(["--peer-base-port", &peer_base.to_string()])
            .args(["--resp-base-port", &resp_base.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        // The self-check talks to loopback; a proxy from the environment
        // must not get in the way.
        for var in [
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            command.env_remove(var);
        }
        let mut child = command.spawn().expect("start ringkv dev");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Dev {
            child,
            lines,
            seen: Vec::new(),
            http_base,
            peer_base,
            resp_base,
            node_pids: Vec::new(),
            dir,
        }
    }

    /// Read stdout until a line contains `text` (bounded).
    fn wait_for_line(&mut self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.seen.iter().any(|l| l.contains(text)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "no line with {text:?} within {within:?}; stdout so far:\n{}\nstderr:\n{}",
                    self.seen.join("\n"),
                    self.stderr()
                ),
            }
        }
    }

    fn stderr(&self) -> String {
        common::tail(&self.dir.path().join("dev.stderr"), 30)
    }

    /// Remember the node processes (this process's children), so a failing
    /// test can still stop them.
    fn record_node_pids(&mut self) {
        let pid = self.child.id();
        self.node_pids = match std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            Ok(children) => children
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect(),
            // Kernels without that file: look for processes whose parent it is.
            Err(_) => std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
                .filter(|candidate| parent_of(*candidate) == Some(pid))
                .collect(),
        };
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Wait (bounded) for `ringkv dev` to exit.
    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn ports(&self) -> Vec<u16> {
        (0..NODES)
            .flat_map(|i| [self.http_base + i, self.peer_base + i, self.resp_base + i])
            .collect()
    }

    fn http_addr(&self, node: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http_base + node - 1))
    }

    fn resp_addr(&self, node: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.resp_base + node - 1))
    }

    /// Drain what is left on stdout (after the process exited).
    fn rest_of_stdout(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
    }
}

/// The fields of `/proc/{pid}/stat` after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

fn process_running(pid: u32) -> bool {
    // A zombie has exited; it only waits to be reaped.
    stat_fields(pid)
        .and_then(|fields| fields.first().cloned())
        .is_some_and(|state| state != "Z" && state != "X")
}

impl Drop for Dev {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            if self.node_pids.is_empty() {
                self.record_node_pids();
            }
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(self.child.id().to_string())
                .status();
            if self.wait_exit(Duration::from_secs(20)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        for pid in &self.node_pids {
            if process_running(*pid) {
                eprintln!("node process {pid} outlived ringkv dev; killing it");
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
            }
        }
        if std::thread::panicking() {
            eprintln!("----- ringkv dev stdout -----\n{}", self.seen.join("\n"));
            eprintln!("----- ringkv dev stderr -----\n{}", self.stderr());
            for i in 1..=NODES {
                let log = self.dir.path().join("cluster").join(format!("n{i}.log"));
                eprintln!("----- n{i} log -----\n{}", common::tail(&log, 20));
            }
        }
    }
}

/// A plain HTTP/1.1 GET over a fresh connection; the whole answer.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    answer
}

/// A Redis `PING` over a fresh connection; the reply.
fn redis_ping(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).expect("read the reply");
    String::from_utf8_lossy(&reply).into_owned()
}

/// After `ringkv dev` is gone: no node process is left and no port of the
/// cluster accepts connections.
fn assert_cluster_gone(dev: &Dev) {
    for pid in &dev.node_pids {
        assert!(!process_running(*pid), "node process {pid} still runs");
    }
    for port in dev.ports() {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
            "port {port} still accepts connections"
        );
    }
}

#[test]
fn ringkv_dev_checks_itself_and_stops_every_node_on_ctrl_c() {
    let mut dev = Dev::start();
    dev.wait_for_line("it works", common::STARTUP_TIMEOUT);
    dev.record_node_pids();
    assert_eq!(dev.node_pids.len(), NODES as usize, "one process per node");

    // The cluster is really up: the self-check's key reads back anywhere.
    for node in 1..=NODES {
        let answer = http_get(dev.http_addr(node), "/kv/dev:check");
        assert!(answer.starts_with("HTTP/1.1 200"), "n{node}: {answer}");
        assert!(answer.ends_with("it works"), "n{node}: {answer}");
    }
    // Every node speaks the Redis protocol, and the banner says where.
    let hint = format!("redis-cli -p {}", dev.resp_base);
    assert!(dev.seen.iter().any(|l| l.contains(&hint)), "{:?}", dev.seen);
    for node in 1..=NODES {
        assert_eq!(redis_ping(dev.resp_addr(node)), "+PONG\r\n", "n{node}");
    }

    dev.signal("INT");
    let status = dev
        .wait_exit(Duration::from_secs(20))
        .expect("ringkv dev exits after Ctrl-C");
    assert!(status.success(), "ringkv dev exited with {status}");
    dev.rest_of_stdout();
    assert!(
        dev.seen.iter().any(|l| l.contains("stopping")),
        "{:?}",
        dev.seen
    );
    assert_cluster_gone(&dev);

    // Every node was stopped cleanly, not killed.
    for i in 1..=NODES {
        let log = dev.dir.path().join("cluster").join(format!("n{i}.log"));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(text.contains("shutdown requested"), "n{i} log:\n{text}");
    }
}

/// A node that dies is reported at once, with its log and the command
/// that starts it again; the others keep serving.
#[test]
fn ringkv_dev_says_when_a_node_dies() {
    let mut dev = Dev::start();
    dev.wait_for_line("it works", common::STARTUP_TIMEOUT);
    dev.record_node_pids();
    let victim = dev.node_pids[1];
    let killed = Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status();
    assert!(killed.is_ok_and(|s| s.success()), "kill -KILL {victim}");
    dev.wait_for_line("exited (signal: 9", Duration::from_secs(10));
    let said = dev.seen.last().cloned().unwrap_or_default();
    assert!(
        said.contains(".log") && said.contains("node --config"),
        "{said}"
    );
    let dead: u16 = said[1..2]
        .parse()
        .expect("the line starts with the node: n<i>");
    let alive = if dead == 1 { 2 } else { 1 };
    let answer = http_get(dev.http_addr(alive), "/kv/dev:check");
    assert!(answer.ends_with("it works"), "{answer}");
}

/// A supervisor's SIGTERM stops the nodes too.
#[test]
fn ringkv_dev_stops_every_node_on_sigterm() {
    let mut dev = Dev::start();
    dev.wait_for_line("it works", common::STARTUP_TIMEOUT);
    dev.record_node_pids();
    dev.signal("TERM");
    dev.wait_exit(Duration::from_secs(20))
        .expect("ringkv dev exits after SIGTERM");
    assert_cluster_gone(&dev);
}

/// Ctrl-C while the cluster is still starting stops what was started.
#[test]
fn ringkv_dev_interrupted_during_startup_leaves_no_node_behind() {
    let mut dev = Dev::start();
    // The banner is printed once every node answers, before the self-check.
    dev.wait_for_line("cluster is up", common::STARTUP_TIMEOUT);
    dev.record_node_pids();
    assert_eq!(dev.node_pids.len(), NODES as usize, "one process per node");
    dev.signal("INT");
    dev.wait_exit(Duration::from_secs(20))
        .expect("ringkv dev exits after Ctrl-C");
    assert_cluster_gone(&dev);
}

/// Base ports that leave no room for every node are refused up front, in
/// one sentence, before anything is started.
#[test]
fn ringkv_dev_refuses_ports_beyond_65535() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (http, peer) in [("65534", "47101"), ("47101", "65535"), ("0", "47101")] {
        let stderr_path = dir.path().join("dev.stderr");
        let mut child = Command::new(common::ringkv_bin())
            .args(["dev", "--nodes", "3", "--data-dir"])
            .arg(dir.path().join("cluster"))
            .args(["--http-base-port", http, "--peer-base-port", peer])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("run ringkv dev");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Some(status);
            }
            if Instant::now() > deadline {
                // It started after all: stop it (and its nodes) cleanly.
                let _ = Command::new("kill")
                    .arg("-INT")
                    .arg(child.id().to_string())
                    .status();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let status =
            status.unwrap_or_else(|| panic!("ports {http}/{peer} were accepted: {stderr}"));
        assert!(!status.success(), "ports {http}/{peer} were accepted");
        assert!(stderr.contains("does not fit 3 nodes"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
