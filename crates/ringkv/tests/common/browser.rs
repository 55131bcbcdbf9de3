//! Headless Chromium for end-to-end tests of the web console, driven over
//! the Chrome DevTools Protocol (a JSON-over-websocket RPC): open a page,
//! evaluate JavaScript in it, take a screenshot. One tab per browser, and
//! one fresh profile directory each, removed with the browser.
//!
//! The binary is `chromium` (Debian's package; `scripts/test` installs it),
//! or the path in `RINGKV_CHROMIUM`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Bound on Chromium starting, and on any one DevTools call.
const LIMIT: Duration = Duration::from_secs(60);

/// A running headless Chromium with one tab attached.
pub struct Browser {
    child: Child,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The attached tab's session (flat mode: calls to it carry this id).
    session: Option<String>,
    next_id: u64,
    /// Chromium's stderr, for the panic message when it misbehaves.
    log: std::path::PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start Chromium headless with a fresh profile and connect to it;
    /// panics with a sentence when it is not installed or does not start.
    pub async fn start() -> Browser {
        let profile = tempfile::Builder::new()
            .prefix("ringkv-chromium-")
            .tempdir()
            .expect("tempdir");
        let log = profile.path().join("chromium.log");
        let child = spawn(profile.path(), &log);
        let url = devtools_url(profile.path(), &log).await;
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to Chromium's DevTools at {url}: {e}"));
        Browser {
            child,
            socket,
            session: None,
            next_id: 1,
            log,
            _profile: profile,
        }
    }

    /// Open `url` in a new tab and attach to it.
    pub async fn open(&mut self, url: &str) {
        let target = self
            .call("Target.createTarget", json!({ "url": url }))
            .await;
        let target = target["targetId"].clone();
        let attach = json!({ "targetId": target, "flatten": true });
        let attached = self.call("Target.attachToTarget", attach).await;
        let session = attached["sessionId"].as_str().expect("a session id");
        self.session = Some(session.to_string());
    }

    /// The value of the JavaScript `expression` in the tab (by value: a
    /// string, number, boolean, or JSON-able object); `Err` when it threw.
    pub async fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let params = json!({ "expression": expression, "returnByValue": true });
        let answer = self.call("Runtime.evaluate", params).await;
        if let Some(thrown) = answer.get("exceptionDetails") {
            return Err(format!("{expression} threw: {thrown}"));
        }
        Ok(answer["result"]["value"].clone())
    }

    /// A PNG of the tab's viewport.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        let answer = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let data = answer["data"].as_str().expect("screenshot data");
        BASE64.decode(data).expect("screenshot base64")
    }

    /// One DevTools call, to the attached tab when there is one; its
    /// result. Events that arrive meanwhile are skipped.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session {
            request["sessionId"] = json!(session);
        }
        let sent = self.socket.send(Message::text(request.to_string())).await;
        sent.unwrap_or_else(|e| panic!("{method}: cannot send: {e}"));
        let answer = tokio::time::timeout(LIMIT, self.answer(id)).await;
        let answer = answer.unwrap_or_else(|_| panic!("{method}: no answer within {LIMIT:?}"));
        if let Some(error) = answer.get("error") {
            panic!("{method} failed: {error}; {}", self.stderr());
        }
        answer["result"].clone()
    }

    /// The message answering call `id`.
    async fn answer(&mut self, id: u64) -> Value {
        loop {
            let message = self.socket.next().await;
            let Some(Ok(Message::Text(text))) = message else {
                match message {
                    Some(Ok(_)) => continue,
                    _ => panic!("Chromium closed its DevTools socket; {}", self.stderr()),
                }
            };
            let value: Value = serde_json::from_str(&text).expect("DevTools sends JSON");
            if value["id"] == json!(id) {
                return value;
            }
        }
    }

    fn stderr(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(20).collect();
        format!(
            "Chromium's stderr ends with:\n{}",
            lines.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chromium headless on a DevTools port of its choosing, which it writes
/// to `DevToolsActivePort` in the profile.
fn spawn(profile: &Path, log: &Path) -> Child {
    let binary = std::env::var("RINGKV_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let stderr = std::fs::File::create(log).expect("chromium log file");
    Command::new(&binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--remote-debugging-port=0",
            "--window-size=1400,1100",
            "about:blank",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {binary}: {e}; install Debian's chromium \
                 (scripts/test does) or set RINGKV_CHROMIUM to a Chromium binary"
            )
        })
}

/// The browser's DevTools websocket, once Chromium has written its port.
async fn devtools_url(profile: &Path, log: &Path) -> String {
    let file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + LIMIT;
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if let [port, path, ..] = text.lines().collect::<Vec<_>>()[..] {
            return format!("ws://127.0.0.1:{port}{path}");
        }
        if Instant::now() > deadline {
            let stderr = std::fs::read_to_string(log).unwrap_or_default();
            panic!("Chromium wrote no DevTools port within {LIMIT:?}; its stderr:\n{stderr}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
