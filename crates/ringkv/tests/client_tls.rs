//! `[client_tls]` end to end: a real node serving HTTPS on its HTTP port
//! and TLS on its RESP port, checked with a rustls client that trusts only
//! the node's certificate (and with `redis-cli --tls` when installed). A
//! client that connects and never starts its handshake holds up nobody.

mod common;

use common::{free_ports, ringkv_bin, run_cli, tail};
use ringkv_client::{Client, Context};
use ringkv_server::auth::{add_user, Role};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// One node with `[auth]` and `[client_tls]`, killed on drop.
struct TlsNode {
    dir: tempfile::TempDir,
    child: Child,
    http: SocketAddr,
    resp: SocketAddr,
    token: String,
}

impl Drop for TlsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", tail(&self.dir.path().join("n1.log"), 40));
        }
    }
}

impl TlsNode {
    async fn start() -> TlsNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let cert = rcgen::generate_simple_self_signed(names).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        let token = add_user(&dir.path().join("users.toml"), "admin", Role::Admin).unwrap();
        let ports = free_ports(3);
        let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let config = format!(
            "insecure = true\nnode_id = \"n1\"\ndata_dir = \"data\"\n\
             [replication]\nn = 1\nr = 1\nw = 1\n\
             [auth]\nusers = \"users.toml\"\n\
             [client_tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
             [[nodes]]\nid = \"n1\"\naddr = \"{}\"\nhttp = \"{}\"\nresp = \"{}\"\n",
            at(ports[0]),
            at(ports[1]),
            at(ports[2])
        );
        std::fs::write(dir.path().join("n1.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("n1.log")).unwrap();
        let child = Command::new(ringkv_bin())
            .args(["node", "--config", "n1.toml"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ringkv node starts");
        let node = TlsNode {
            dir,
            child,
            http: at(ports[1]),
            resp: at(ports[2]),
            token,
        };
        node.wait_up().await;
        node
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    async fn wait_up(&self) {
        let deadline = Instant::now() + common::STARTUP_TIMEOUT;
        while self.https("GET", "/health/live", None).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the node did not serve HTTPS in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A TLS connection to `addr` trusting only the node's certificate.
    async fn connect(&self, addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.cert_path()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        let connector = TlsConnector::from(Arc::new(config));
        tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp)).await?
    }

    /// One HTTPS request; the whole answer as text.
    async fn https(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> std::io::Result<String> {
        let mut tls = self.connect(self.http).await?;
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\n\
             Connection: close\r\n\r\n"
        );
        tls.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        tls.read_to_string(&mut answer).await?;
        Ok(answer)
    }
}

#[tokio::test]
async fn https_and_resp_over_tls_with_a_slow_client_in_the_way() {
    let node = TlsNode::start().await;
    // A client that connects and never says a word...
    let _silent = TcpStream::connect(node.http).await.unwrap();
    // ...delays no one else's handshake.
    let started = Instant::now();
    let status = node
        .https("GET", "/status", Some(&node.token))
        .await
        .unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let anonymous = node.https("GET", "/status", None).await.unwrap();
    assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");
    let put = node.https("PUT", "/kv/k", Some(&node.token)).await.unwrap();
    assert!(put.starts_with("HTTP/1.1 204"), "{put}");

    let mut resp = node.connect(node.resp).await.unwrap();
    resp.write_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
        .await
        .unwrap();
    let auth = format!(
        "*2\r\n$4\r\nAUTH\r\n${}\r\n{}\r\n",
        node.token.len(),
        node.token
    );
    resp.write_all(auth.as_bytes()).await.unwrap();
    let mut replies = vec![0; 256];
    let mut got = String::new();
    while !got.contains("+OK\r\n") {
        let n = resp.read(&mut replies).await.unwrap();
        assert!(n > 0, "closed after {got:?}");
        got.push_str(&String::from_utf8_lossy(&replies[..n]));
    }
    assert_eq!(got, "-NOAUTH Authentication required.\r\n+OK\r\n");
    redis_cli_over_tls(&node);
    plain_http_is_not_served(node.http).await;
}

/// `redis-cli --tls --cacert`, as the README says, when it is installed.
fn redis_cli_over_tls(node: &TlsNode) {
    let port = node.resp.port().to_string();
    let cacert = node.cert_path();
    let run = |args: &[&str]| {
        let mut command = Command::new("redis-cli");
        command.args(["--tls", "--cacert"]).arg(&cacert);
        command.args(["--sni", "localhost", "-p", &port, "--no-auth-warning"]);
        command.args(args).output()
    };
    let Ok(set) = run(&["-a", &node.token, "SET", "k", "v"]) else {
        eprintln!("redis-cli is not installed (scripts/test installs redis-tools): skipped");
        return;
    };
    let text = |out: &[u8]| String::from_utf8_lossy(out).trim().to_string();
    assert_eq!(text(&set.stdout), "OK", "{}", text(&set.stderr));
    let get = run(&["--user", "admin", "--pass", &node.token, "GET", "k"]).unwrap();
    assert_eq!(text(&get.stdout), "v", "{}", text(&get.stderr));
}

/// A plaintext request to the HTTPS port gets no HTTP answer.
async fn plain_http_is_not_served(addr: SocketAddr) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
        "{read:?}"
    );
}

/// `--cacert` (CLI) and `ca_certificate` (library) switch to HTTPS and
/// trust that CA alone.
#[tokio::test]
async fn the_cli_and_the_client_library_speak_https_given_the_ca() {
    let node = TlsNode::start().await;
    let pem = std::fs::read(node.cert_path()).unwrap();
    let seed = node.http.to_string();
    let client = Client::builder()
        .token(&node.token)
        .ca_certificate(pem)
        .connect([&seed])
        .await
        .expect("connects over HTTPS");
    client.put("k", "v", &Context::none()).await.unwrap();
    let cacert = node.cert_path();
    let cacert = cacert.to_str().unwrap();
    let common = ["--node", &seed, "--token", &node.token, "--cacert", cacert];
    let got = run_cli(
        &[&["get", "k"][..], &common].concat(),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(got, "v\n");
    let status = run_cli(
        &[&["status"][..], &common].concat(),
        Duration::from_secs(30),
    )
    .await;
    assert!(status.contains("n1"), "{status}");
    let plain = Client::builder().token(&node.token).connect([&seed]).await;
    assert!(plain.is_err(), "plain HTTP to the HTTPS port must fail");
}

#[tokio::test]
async fn a_missing_certificate_stops_the_node_with_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = common::refused_start(
        dir.path(),
        "insecure = true\n[client_tls]\ncert = \"none.pem\"\nkey = \"none.key\"",
    );
    let expected = format!(
        "[client_tls]: cannot read {}",
        Path::new(dir.path()).join("none.pem").display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}
