//! `ringkv put/get/delete/status/repair`: a thin client for people and
//! scripts. Values go to stdout; contexts and notes go to stderr.
//!
//! `put`, `get` and `delete` go through [`ringkv_client`]: partition-aware
//! by default (straight to the key's coordinator, with `--node` only the
//! seed the topology is fetched from), or through `--node` with
//! `--generic`. `status` and `repair` talk to `--node` itself.

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use ringkv_client::{Bucket, Client, ClientBuilder, Context, Http, Options, Routing};
use ringkv_core::anti_entropy::RepairProgress;
use ringkv_server::http::RepairStarted;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Target {
    /// HTTP address of any node.
    #[arg(long, env = "RINGKV_NODE", default_value = "127.0.0.1:8101")]
    pub node: String,
}

impl Target {
    fn request(&self, method: Method, path: &str) -> Result<RequestBuilder, String> {
        let token = token()?;
        let http = Http::new(token.as_deref(), ca_pem()?.as_deref()).map_err(|e| e.to_string())?;
        Ok(http.request(method, &self.node, path))
    }
}

/// The token to send: `--token`, else `--token-file`, else `RINGKV_TOKEN`
/// (a flag on the command line beats the environment). Flags are visible
/// to other users in `ps`; the file and the variable are not. Global, so
/// it goes after any client subcommand (`ringkv get k --token T`).
#[derive(clap::Args)]
pub struct Credential {
    /// Bearer token for the cluster's client API (`ringkv user add`
    /// makes one; RINGKV_TOKEN works too).
    #[arg(long, global = true, conflicts_with = "token_file")]
    token: Option<String>,
    /// A file holding the bearer token.
    #[arg(long, global = true, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Talk HTTPS to nodes with `[client_tls]`, trusting the CA
    /// certificate(s) in this PEM file.
    #[arg(long, global = true, env = "RINGKV_CACERT", value_name = "PATH")]
    cacert: Option<PathBuf>,
}

/// The credential of this run of the CLI, set once by `main`.
static CREDENTIAL: OnceLock<Credential> = OnceLock::new();

/// Use `credential` for every request of this process.
pub fn set_credential(credential: Credential) {
    let _ = CREDENTIAL.set(credential);
}

/// `builder` sending this run's token and trusting its CA, if any.
pub fn with_credential(mut builder: ClientBuilder) -> Result<ClientBuilder, String> {
    if let Some(token) = token()? {
        builder = builder.token(token);
    }
    if let Some(pem) = ca_pem()? {
        builder = builder.ca_certificate(pem);
    }
    Ok(builder)
}

/// The `--cacert` file's bytes, if one is given.
fn ca_pem() -> Result<Option<Vec<u8>>, String> {
    let Some(path) = CREDENTIAL.get().and_then(|c| c.cacert.as_ref()) else {
        return Ok(None);
    };
    std::fs::read(path)
        .map(Some)
        .map_err(|e| format!("cannot read CA certificate {}: {e}", path.display()))
}

/// The token of this run, if any.
fn token() -> Result<Option<String>, String> {
    match CREDENTIAL.get() {
        Some(credential) => credential.token(),
        None => Ok(None),
    }
}

impl Credential {
    fn token(&self) -> Result<Option<String>, String> {
        if let Some(token) = &self.token {
            return Ok(Some(token.clone()));
        }
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
            return match text.trim() {
                "" => Err(format!("token file {} is empty", path.display())),
                token => Ok(Some(token.to_string())),
            };
        }
        Ok(std::env::var("RINGKV_TOKEN").ok().filter(|t| !t.is_empty()))
    }
}

/// Where a key operation goes.
#[derive(clap::Args)]
pub struct Routed {
    #[command(flatten)]
    pub target: Target,
    /// Send the request to --node and let it forward it to the key's
    /// coordinator (one hop), instead of straight to the coordinator.
    #[arg(long)]
    pub generic: bool,
}

/// Which bucket a key operation is in.
#[derive(clap::Args)]
pub struct InBucket {
    /// The key's bucket (`ringkv bucket list`); without it, a `/kv` key.
    #[arg(long)]
    pub bucket: Option<String>,
}

impl InBucket {
    /// The bucket, fetched from the cluster, if one is named.
    async fn fetch(&self, client: &Client) -> Result<Option<Bucket>, String> {
        match &self.bucket {
            None => Ok(None),
            Some(name) => client
                .bucket(name)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    }
}

impl Routed {
    pub async fn connect(&self) -> Result<Client, String> {
        let routing = if self.generic {
            Routing::Generic
        } else {
            Routing::PartitionAware
        };
        with_credential(Client::builder().routing(routing))?
            .connect([self.target.node.as_str()])
            .await
            .map_err(|e| e.to_string())
    }
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

fn print_context(context: &Context) {
    eprintln!("context: {}", context.as_str().unwrap_or_default());
}

/// The context (none: a blind write) and options of a CLI write.
fn write_args(w: Option<usize>, context: Option<String>) -> (Context, Options) {
    let context = context.map(Context::from).unwrap_or_default();
    let options = Options {
        w,
        ..Options::default()
    };
    (context, options)
}

/// `ringkv put`: `w` and the TTL in seconds.
pub async fn put(
    routed: &Routed,
    bucket: &InBucket,
    (key, value): (&str, String),
    (w, ttl): (Option<usize>, Option<u64>),
    context: Option<String>,
) -> Result<(), String> {
    let client = routed.connect().await?;
    let bucket = bucket.fetch(&client).await?;
    let (context, mut options) = write_args(w, context);
    options.ttl = ttl.map(std::time::Duration::from_secs);
    let written = client
        .put_in(bucket.as_ref(), key, value, &context, &options)
        .await
        .map_err(|e| e.to_string())?;
    print_context(&written);
    Ok(())
}

pub async fn delete(
    routed: &Routed,
    bucket: &InBucket,
    key: &str,
    w: Option<usize>,
    context: Option<String>,
) -> Result<(), String> {
    let client = routed.connect().await?;
    let bucket = bucket.fetch(&client).await?;
    let (context, options) = write_args(w, context);
    let written = client
        .delete_in(bucket.as_ref(), key, &context, &options)
        .await
        .map_err(|e| e.to_string())?;
    print_context(&written);
    Ok(())
}

pub async fn get(
    routed: &Routed,
    bucket: &InBucket,
    key: &str,
    r: Option<usize>,
) -> Result<(), String> {
    let client = routed.connect().await?;
    let bucket = bucket.fetch(&client).await?;
    let options = Options {
        r,
        ..Options::default()
    };
    let versions = client
        .get_in(bucket.as_ref(), key, &options)
        .await
        .map_err(|e| e.to_string())?;
    if versions.is_empty() {
        return Err(format!("{key}: not found"));
    }
    let several = versions.is_conflict();
    if several {
        eprintln!(
            "{} siblings (concurrent versions):",
            versions.siblings.len()
        );
    }
    for sibling in &versions.siblings {
        if several {
            eprint!(
                "[{}:{} at {} ms] ",
                sibling.dot.node, sibling.dot.counter, sibling.timestamp
            );
        }
        println!("{}", String::from_utf8_lossy(&sibling.value));
    }
    print_context(&versions.context);
    Ok(())
}

/// `ringkv keys`: every key of `bucket`, one per line (a Redis key with
/// its type after a tab; one that is not UTF-8 as `base64:…`), asking
/// `page` keys at a time until the listing is complete.
pub async fn keys(routed: &Routed, bucket: &str, page: usize) -> Result<(), String> {
    let client = routed.connect().await?;
    let mut after: Option<String> = None;
    loop {
        let listed = client
            .keys_page(bucket, page, after.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        for key in &listed.keys {
            let name = match (&key.key, &key.key_base64) {
                (Some(text), _) => text.clone(),
                (None, Some(b64)) => format!("base64:{b64}"),
                (None, None) => continue,
            };
            match bucket {
                "default" => println!("{name}"),
                _ => println!("{name}\t{}", key.kind),
            }
        }
        match listed.next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

/// A node's view of the cluster: a member table (or the whole document).
pub async fn status(target: &Target, json: bool) -> Result<(), String> {
    let status = status_json(target).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        );
    } else {
        print!("{}", crate::status_table::render(&status));
    }
    Ok(())
}

async fn status_json(target: &Target) -> Result<serde_json::Value, String> {
    let response =
        check(send(target.request(Method::GET, "/status")?, &target.node).await?).await?;
    response.json().await.map_err(|e| e.to_string())
}

/// Ask a node to leave the cluster and follow its handoff until it stops.
pub async fn leave(target: &Target) -> Result<(), String> {
    check(send(target.request(Method::POST, "/admin/leave")?, &target.node).await?).await?;
    eprintln!(
        "{} is leaving: its ranges move to their new owners",
        target.node
    );
    while let Ok(response) = target.request(Method::GET, "/status")?.send().await {
        let status: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        let me = status["node"].as_str().unwrap_or_default();
        let mine = status["members"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["id"] == me))
            .map_or("gone", |m| m["status"].as_str().unwrap_or("unknown"));
        eprintln!("{me}: {mine}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("{} has left and stopped", target.node);
    Ok(())
}

/// Remove a member for good and follow until every range it held has been
/// handed over by the survivors (its status turns `removed`).
pub async fn remove(target: &Target, node_id: &str, force: bool) -> Result<(), String> {
    let path = format!("/admin/remove/{node_id}?force={force}");
    check(send(target.request(Method::POST, &path)?, &target.node).await?).await?;
    eprintln!("{node_id} is being removed: the survivors hand its ranges to their new owners");
    let mut said = String::new();
    loop {
        let status = status_json(target).await?;
        let line = removal_line(&status, node_id);
        if line != said {
            eprintln!("{line}");
            said = line;
        }
        if said == format!("{node_id}: removed") {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `n4: removing (waiting for n2, n3 to hold their share)`: the member's
/// status and, while it is not removed, whom the removal waits for (a
/// member down meanwhile is waited for: the operator must see it).
fn removal_line(status: &serde_json::Value, node_id: &str) -> String {
    let member = status["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["id"] == node_id));
    let now = member.map_or("unknown", |m| m["status"].as_str().unwrap_or("unknown"));
    let waits: Vec<&str> = status["ring_change_waits_for"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str())
        .collect();
    if now == "removed" || waits.is_empty() {
        return format!("{node_id}: {now}");
    }
    format!(
        "{node_id}: {now} (waiting for {} to hold their share)",
        waits.join(", ")
    )
}

/// Start a forced anti-entropy repair and follow its progress until done.
pub async fn repair(target: &Target, range: Option<u64>, rebuild: bool) -> Result<(), String> {
    let before = status_json(target).await?;
    let mut path = format!("/admin/repair?rebuild={rebuild}");
    if let Some(token) = range {
        path.push_str(&format!("&token={token}"));
    }
    let response = check(send(target.request(Method::POST, &path)?, &target.node).await?).await?;
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
            return match (progress.failed, progress.last_failure) {
                (0, _) => Ok(()),
                (failed, cause) => Err(format!(
                    "{failed} of {} exchanges failed, the last because {}",
                    progress.total,
                    cause.as_deref().unwrap_or("of an unknown cause")
                )),
            };
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod removal_line_tests {
    use super::removal_line;

    #[test]
    fn says_whom_a_removal_waits_for_until_it_is_done() {
        let waiting = serde_json::json!({
            "members": [{"id": "n4", "status": "removing"}],
            "ring_change_waits_for": ["n2", "n3"]
        });
        assert_eq!(
            removal_line(&waiting, "n4"),
            "n4: removing (waiting for n2, n3 to hold their share)"
        );
        let done = serde_json::json!({
            "members": [{"id": "n4", "status": "removed"}],
            "ring_change_waits_for": []
        });
        assert_eq!(removal_line(&done, "n4"), "n4: removed");
    }
}
