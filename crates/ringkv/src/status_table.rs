//! `ringkv status` for people: who is in the cluster, in what state, who
//! suspects whom, each member's share of the ring, hints and handoffs.

use serde_json::Value;
use std::fmt::Write;

/// Render a node's `/status` document as a short report.
pub fn render(status: &Value) -> String {
    let mut out = String::new();
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let _ = writeln!(
        out,
        "node {} of cluster {} (N={} R={} W={}), ring {}",
        text(&status["node"]),
        text(&status["cluster"]),
        status["n"],
        status["r"],
        status["w"],
        text(&status["ring_fingerprint"])
    );
    let _ = writeln!(
        out,
        "{:<12} {:<14} {:>6} {:>6}  {:<22} suspected by",
        "member", "status", "share", "gen", "address"
    );
    for m in status["members"].as_array().into_iter().flatten() {
        let suspecters: Vec<String> = m["suspected_by"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        let _ = writeln!(
            out,
            "{:<12} {:<14} {:>5.1}% {:>6}  {:<22} {}",
            text(&m["id"]),
            status_cell(m),
            m["ownership"].as_f64().unwrap_or(0.0) * 100.0,
            generation_cell(m),
            text(&m["http"]),
            suspecters.join(", ")
        );
    }
    for m in status["members"].as_array().into_iter().flatten() {
        if let Some(dead) = m["replaces"].as_str() {
            let _ = writeln!(out, "{} replaces {dead}", text(&m["id"]));
        }
        if let Some(reason) = m["settings_mismatch"].as_str() {
            let _ = writeln!(out, "{} is not used: {reason}", text(&m["id"]));
        }
    }
    let hints: Vec<String> = status["pending_hints"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(owner, n)| format!("{n} for {owner}"))
        .collect();
    if !hints.is_empty() {
        let _ = writeln!(out, "hints kept here: {}", hints.join(", "));
    }
    let h = &status["handoff"];
    if !h.is_null() {
        let _ = writeln!(
            out,
            "handoff: {}% ({} of {} ranges, {} keys, {} bytes received)",
            h["percent"], h["ranges_done"], h["ranges_total"], h["keys"], h["bytes"]
        );
    }
    let _ = writeln!(out, "keys stored here: {}", status["stored_keys"]);
    out
}

/// The generation, or `fenced` for a removed member's (`u64::MAX`, which
/// no restart can outrun).
fn generation_cell(m: &Value) -> String {
    match m["generation"].as_u64() {
        Some(u64::MAX) => "fenced".into(),
        generation => generation.unwrap_or(0).to_string(),
    }
}

/// The status, and `(down)` after one that does not say it (a joining or
/// leaving member that died; see `liveness` in `/status`).
fn status_cell(m: &Value) -> String {
    let status = m["status"].as_str().unwrap_or("-");
    let gone = ["down", "left", "removed", "removing"].contains(&status);
    match m["liveness"].as_str() {
        Some(liveness @ ("down" | "suspect")) if !gone && status != liveness => {
            format!("{status} ({liveness})")
        }
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_members_suspicions_hints_and_handoff() {
        let status = serde_json::json!({
            "node": "n1", "cluster": "dev", "n": 3, "r": 2, "w": 2,
            "ring_fingerprint": "00000000000000ab",
            "members": [
                {"id": "n1", "status": "up", "ownership": 0.5, "generation": 3,
                 "http": "127.0.0.1:8101", "suspected_by": []},
                {"id": "n2", "status": "down", "ownership": 0.5, "generation": 1,
                 "http": "127.0.0.1:8102", "suspected_by": ["n1", "n3"],
                 "settings_mismatch": "replication n differs: this node has 3, peer n2 has 2"},
                {"id": "n4", "status": "joining", "liveness": "down", "ownership": 0.0,
                 "generation": 1, "http": "127.0.0.1:8104", "suspected_by": ["n1"],
                 "replaces": "n3"},
                {"id": "n3", "status": "removed", "ownership": 0.0,
                 "generation": 18446744073709551615u64, "suspected_by": []}
            ],
            "pending_hints": {"n2": 12},
            "handoff": {"percent": 40, "ranges_done": 4, "ranges_total": 10, "keys": 7, "bytes": 700},
            "stored_keys": 99
        });
        let text = render(&status);
        assert!(
            text.contains("n2           down            50.0%      1  127.0.0.1:8102"),
            "{text}"
        );
        assert!(text.contains("n4           joining (down)"), "{text}");
        assert!(text.contains("n4 replaces n3"), "{text}");
        assert!(text.contains("removed          0.0% fenced"), "{text}");
        assert!(text.contains("n1, n3"), "{text}");
        assert!(
            text.contains("n2 is not used: replication n differs: this node has 3, peer n2 has 2"),
            "{text}"
        );
        assert!(text.contains("hints kept here: 12 for n2"), "{text}");
        assert!(text.contains("handoff: 40% (4 of 10 ranges"), "{text}");
        assert!(text.contains("keys stored here: 99"), "{text}");
    }
}
