//! `ringkv put/get/delete/status`: a thin HTTP client for people and scripts.
//! Values go to stdout; contexts and notes go to stderr.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use ringkv_core::anti_entropy::RepairProgress;
use ringkv_server::http::{RepairStarted, SiblingsJson, CONTEXT_HEADER};
use std::time::Duration;

#[derive(clap::Args)]
pub struct Target {
    /// HTTP address of any node (it forwards to the key's coordinator).
    #[arg(long, env = "RINGKV_NODE", default_value = "127.0.0.1:8101")]
    pub node: String,
}

impl Target {
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        reqwest::Client::new().request(method, format!("http://{}{}", self.node, path))
    }
}

/// Percent-encode a key so any bytes survive as one path segment.
fn key_path(key: &str, query: &[(&str, Option<usize>)]) -> String {
    let mut path = String::from("/kv/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            path.push(b as char);
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    let params: Vec<String> = query
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
        .collect();
    if !params.is_empty() {
        path.push('?');
        path.push_str(&params.join("&"));
    }
    path
}

async fn send(builder: RequestBuilder, node: &str) -> Result<Response, String> {
    builder
        .send()
        .await
        .map_err(|e| format!("cannot reach node {node}: {e}"))
}

/// Turn an error status into the server's one-sentence message.
async fn check(response: Response) -> Result<Response, String> {
    let status = response.status();
    if status.is_success() || status == StatusCode::MULTIPLE_CHOICES {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(format!("{status}: {}", body.trim()))
}

fn print_context(response: &Response) {
    if let Some(ctx) = response.headers().get(CONTEXT_HEADER) {
        eprintln!("context: {}", ctx.to_str().unwrap_or_default());
    }
}

fn with_context(builder: RequestBuilder, context: Option<String>) -> RequestBuilder {
    match context {
        Some(ctx) => builder.header(CONTEXT_HEADER, ctx),
        None => builder,
    }
}

pub async fn put(
    target: &Target,
    key: &str,
    value: String,
    w: Option<usize>,
    context: Option<String>,
) -> Result<(), String> {
    let request = target.request(Method::PUT, &key_path(key, &[("w", w)]));
    let response =
        check(send(with_context(request, context).body(value), &target.node).await?).await?;
    print_context(&response);
    Ok(())
}

pub async fn delete(
    target: &Target,
    key: &str,
    w: Option<usize>,
    context: Option<String>,
) -> Result<(), String> {
    let request = target.request(Method::DELETE, &key_path(key, &[("w", w)]));
    let response = check(send(with_context(request, context), &target.node).await?).await?;
    print_context(&response);
    Ok(())
}

pub async fn get(target: &Target, key: &str, r: Option<usize>) -> Result<(), String> {
    let request = target
        .request(Method::GET, &key_path(key, &[("r", r)]))
        .header("accept", "application/json");
    let response = send(request, &target.node).await?;
    if response.status() == StatusCode::NOT_FOUND {
        return Err(format!("{key}: not found"));
    }
    let response = check(response).await?;
    let body: SiblingsJson = response
        .json()
        .await
        .map_err(|e| format!("unexpected answer from {}: {e}", target.node))?;
    if body.siblings.len() > 1 {
        eprintln!("{} siblings (concurrent versions):", body.siblings.len());
    }
    for sibling in &body.siblings {
        let bytes = BASE64.decode(&sibling.value).unwrap_or_default();
        if body.siblings.len() > 1 {
            eprint!("[{} at {} ms] ", sibling.dot, sibling.timestamp);
        }
        println!("{}", String::from_utf8_lossy(&bytes));
    }
    eprintln!("context: {}", body.context);
    Ok(())
}

pub async fn status(target: &Target) -> Result<(), String> {
    let json = status_json(target).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json).unwrap_or_default()
    );
    Ok(())
}

async fn status_json(target: &Target) -> Result<serde_json::Value, String> {
    let response = check(send(target.request(Method::GET, "/status"), &target.node).await?).await?;
    response.json().await.map_err(|e| e.to_string())
}

/// Start a forced anti-entropy repair and follow its progress until done.
pub async fn repair(target: &Target, range: Option<u64>, rebuild: bool) -> Result<(), String> {
    let before = status_json(target).await?;
    let mut path = format!("/admin/repair?rebuild={rebuild}");
    if let Some(token) = range {
        path.push_str(&format!("&token={token}"));
    }
    let response = check(send(target.request(Method::POST, &path), &target.node).await?).await?;
    let started: RepairStarted = response.json().await.map_err(|e| e.to_string())?;
    eprintln!(
        "repair: {} exchanges queued on {}",
        started.exchanges, target.node
    );
    loop {
        let status = status_json(target).await?;
        let ae = &status["anti_entropy"];
        let progress: RepairProgress = serde_json::from_value(ae["repair"].clone())
            .map_err(|e| format!("unexpected repair status from {}: {e}", target.node))?;
        let ended = progress.done + progress.failed;
        let percent = (ended * 100).checked_div(progress.total).unwrap_or(100);
        let count = |status: &serde_json::Value| status["keys_repaired"].as_u64().unwrap_or(0);
        let repaired = count(ae).saturating_sub(count(&before["anti_entropy"]));
        eprintln!(
            "repair: {ended}/{} exchanges ({percent}%), {} failed, {repaired} keys repaired",
            progress.total, progress.failed
        );
        if progress.finished() {
            return match progress.failed {
                0 => Ok(()),
                failed => Err(format!(
                    "{failed} of {} exchanges failed (a peer was unreachable or too slow); \
                     run the repair again once every node is up",
                    progress.total
                )),
            };
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
