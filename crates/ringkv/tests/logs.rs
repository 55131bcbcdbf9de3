//! `ringkv node` logging: `--log-format json` writes one JSON object per
//! line, `--log-level` filters and wins over `RINGKV_LOG`, and a filter that
//! does not parse is refused in one sentence.

mod common;

use common::{eventually, free_ports, http_client, ringkv_bin};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A one-node cluster's config in `dir`, on free loopback ports; answers
/// the config's path and the node's HTTP address.
fn config(dir: &Path) -> (std::path::PathBuf, String) {
    let ports = free_ports(2);
    let http = format!("127.0.0.1:{}", ports[1]);
    let text = format!(
        "cluster = \"logs\"\ninsecure = true\nnode_id = \"n1\"\ndata_dir = {:?}\n\n\
         [replication]\nn = 1\nr = 1\nw = 1\n\n\
         [[nodes]]\nid = \"n1\"\naddr = \"127.0.0.1:{}\"\nhttp = \"{http}\"\n",
        dir.join("data"),
        ports[0],
    );
    let path = dir.join("n1.toml");
    std::fs::write(&path, text).expect("write config");
    (path, http)
}

/// Run a node with `args` and `RINGKV_LOG` = `env` until it serves HTTP
/// and has taken a write, then stop it: its stderr.
async fn logs_of(args: &[&str], env: Option<&str>) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, http) = config(dir.path());
    let log = dir.path().join("stderr");
    let mut command = Command::new(ringkv_bin());
    command
        .args(["node", "--config"])
        .arg(&path)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("RINGKV_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    if let Some(env) = env {
        command.env("RINGKV_LOG", env);
    }
    let child = Killed(command.spawn().expect("start ringkv node"));
    let client = http_client();
    let url = format!("http://{http}/kv/k");
    eventually(
        Duration::from_secs(20),
        "the node takes a write",
        async || {
            let put = client.put(&url).body("v").send().await;
            match put {
                Ok(r) if r.status().as_u16() == 204 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    drop(child);
    std::fs::read_to_string(&log).expect("read log")
}

/// SIGKILLs the node when dropped, even when the test fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn levels(lines: &[serde_json::Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["level"].as_str().expect("a level").to_string())
        .collect()
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

#[tokio::test]
async fn json_lines_parse_and_levels_filter() {
    let info = json_lines(&logs_of(&["--log-format", "json"], None).await);
    assert!(info.iter().any(|l| {
        l["level"] == "INFO"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("node n1 up"))
    }));
    assert!(info
        .iter()
        .all(|l| l["timestamp"].is_string() && l["target"].is_string()));
    assert!(
        !levels(&info).contains(&"DEBUG".to_string()),
        "info by default"
    );

    let debug = json_lines(&logs_of(&["--log-format", "json"], Some("debug")).await);
    assert!(
        levels(&debug).contains(&"DEBUG".to_string()),
        "RINGKV_LOG=debug"
    );

    let args = ["--log-format", "json", "--log-level", "warn"];
    let warn = json_lines(&logs_of(&args, Some("debug")).await);
    assert!(!warn.is_empty(), "insecure = true is warned about");
    assert!(
        levels(&warn).iter().all(|l| l == "WARN" || l == "ERROR"),
        "the flag wins"
    );

    let text = logs_of(&[], None).await;
    assert!(
        text.contains(" INFO ") && !text.trim_start().starts_with('{'),
        "{text}"
    );
}

#[test]
fn a_filter_that_does_not_parse_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = config(dir.path());
    let out = Command::new(ringkv_bin())
        .args(["node", "--config"])
        .arg(&path)
        .args(["--log-level", "info,=="])
        .output()
        .expect("run ringkv node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.starts_with("error: --log-level \"info,==\" is not a log filter"),
        "{stderr}"
    );
    assert!(!dir.path().join("data").exists(), "the node did not start");
}

/// With `--log-format json` even the error that stops the node is a JSON
/// line (a log shipper parses every line): here its HTTP port is taken.
#[test]
fn the_fatal_error_of_a_json_logging_node_is_a_json_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, http) = config(dir.path());
    let _taken = std::net::TcpListener::bind(&http).expect("take the HTTP port");
    let out = Command::new(ringkv_bin())
        .args(["node", "--config"])
        .arg(&path)
        .args(["--log-format", "json"])
        .env_remove("RUST_LOG")
        .env_remove("RINGKV_LOG")
        .output()
        .expect("run ringkv node");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let last = lines.last().expect("some log line");
    assert_eq!(last["level"], "ERROR", "{last}");
    assert_eq!(last["fields"]["fatal"], true, "{last}");
    let message = last["fields"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&http), "{message}");
}
