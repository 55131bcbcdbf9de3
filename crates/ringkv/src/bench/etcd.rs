//! etcd v3 through its JSON gateway (`POST /v3/kv/...`, keys and values
//! base64), requests spread round-robin over the given endpoints.
//!
//! Read: `range` (linearizable, etcd's default). Update and insert: `put`.
//! Read-modify-write: `range`, then a `txn` that puts only if the key's
//! `mod_revision` is still the one read — the write is conditional on
//! what was read, as a ringkv write with a read's context is. When another
//! write came in between, etcd refuses it and the operation counts as an
//! error (ringkv would keep both, as siblings).

use super::targets::{root_cause, Done, Target};
use super::workload::{Op, OpKind};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Bound on one request, as the ringkv client's.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Etcd {
    http: reqwest::Client,
    endpoints: Vec<String>,
    next: AtomicUsize,
}

impl Etcd {
    /// Check that at least one of `endpoints` (`host:port`) answers.
    pub async fn connect(endpoints: &[String]) -> Result<Etcd, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        let etcd = Etcd {
            http,
            endpoints: endpoints
                .iter()
                .map(|e| {
                    e.trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_string()
                })
                .collect(),
            next: AtomicUsize::new(0),
        };
        let mut last = String::from("no endpoint given");
        for _ in 0..etcd.endpoints.len() {
            match etcd.call("/v3/maintenance/status", json!({})).await {
                Ok(_) => return Ok(etcd),
                Err(e) => last = e,
            }
        }
        Err(format!("no etcd endpoint reachable: {last}"))
    }

    /// POST `body` to the next endpoint; an HTTP error status or an
    /// `error` field is an error.
    async fn call(&self, path: &str, body: Value) -> Result<Value, String> {
        let endpoint =
            &self.endpoints[self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len()];
        let response = self
            .http
            .post(format!("http://{endpoint}{path}"))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("etcd {endpoint}: {}", root_cause(&e)))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .map_err(|e| format!("etcd {endpoint} answered {status} with no JSON: {e}"))?;
        if !status.is_success() || answer.get("error").is_some() {
            let message = answer
                .get("message")
                .or(answer.get("error"))
                .unwrap_or(&answer);
            return Err(format!("etcd {endpoint} answered {status}: {message}"));
        }
        Ok(answer)
    }

    /// The key's `mod_revision`, or `None` when it does not exist.
    async fn range(&self, key: &str) -> Result<Option<i64>, String> {
        let answer = self
            .call("/v3/kv/range", json!({ "key": BASE64.encode(key) }))
            .await?;
        let Some(kv) = answer["kvs"].get(0) else {
            return Ok(None);
        };
        // int64 fields come as JSON strings.
        let revision = &kv["mod_revision"];
        revision
            .as_str()
            .and_then(|r| r.parse().ok())
            .or(revision.as_i64())
            .map(Some)
            .ok_or_else(|| format!("etcd range answer without a mod_revision: {answer}"))
    }

    fn put_request(key: &str, value: &[u8]) -> Value {
        json!({ "key": BASE64.encode(key), "value": BASE64.encode(value) })
    }

    /// Put `value` if the key's revision is still `revision` (0: absent).
    async fn put_if_unchanged(&self, key: &str, value: &[u8], revision: i64) -> Result<(), String> {
        let txn = json!({
            "compare": [{
                "key": BASE64.encode(key),
                "result": "EQUAL",
                "target": "MOD",
                "mod_revision": revision.to_string(),
            }],
            "success": [{ "request_put": Self::put_request(key, value) }],
        });
        let answer = self.call("/v3/kv/txn", txn).await?;
        match answer["succeeded"].as_bool() {
            Some(true) => Ok(()),
            _ => Err("etcd txn refused: the key changed between the read and the write".into()),
        }
    }
}

impl Target for Etcd {
    async fn execute(&self, op: Op) -> Result<Done, String> {
        match op.kind {
            OpKind::Read => Ok(match self.range(&op.key).await? {
                Some(_) => Done::Ok,
                None => Done::NotFound,
            }),
            OpKind::Update | OpKind::Insert => {
                let put = Self::put_request(&op.key, &op.value);
                self.call("/v3/kv/put", put).await.map(|_| Done::Ok)
            }
            OpKind::ReadModifyWrite => {
                let revision = self.range(&op.key).await?.unwrap_or(0);
                self.put_if_unchanged(&op.key, &op.value, revision).await?;
                Ok(Done::Ok)
            }
        }
    }
}
