//! `INFO` and `DBSIZE`: what the node reports about itself, in Redis's
//! words where Redis has them (monitoring tools parse `# Server`,
//! `# Clients` and `# Keyspace`) and in a `# ringkv` section for the rest.

use super::exec::Failure;
use super::{Context, REDIS_VERSION};
use crate::driver::NodeReport;
use redis_protocol::resp2::types::BytesFrame;

/// The sections `INFO` gives when none is named, and for `all`,
/// `everything` or `default`: every one, as each is short.
const SECTIONS: [&str; 4] = ["server", "clients", "keyspace", "ringkv"];

/// `INFO [section …]`: the named sections (any case; unknown ones give
/// nothing, as in Redis).
pub async fn info(ctx: &Context, wanted: &[String]) -> Result<BytesFrame, Failure> {
    let report = report(ctx).await?;
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| matches!(w.as_str(), "all" | "everything" | "default"));
    let text: Vec<String> = SECTIONS
        .iter()
        .filter(|name| all || wanted.iter().any(|w| w == *name))
        .map(|name| section(name, ctx, &report).join("\r\n") + "\r\n")
        .collect();
    Ok(BytesFrame::BulkString(text.join("\r\n").into()))
}

/// `DBSIZE`: the keys in this node's own store, from the counts the node
/// keeps as it writes (no scan). Not Redis's exact meaning, by nature of
/// a ring: it counts every keyspace (HTTP keys too, tombstones included)
/// and only the keys this node is a replica of — one node's share, not
/// the cluster's total.
pub async fn dbsize(ctx: &Context) -> Result<BytesFrame, Failure> {
    let report = report(ctx).await?;
    Ok(BytesFrame::Integer(report.membership.stored_keys as i64))
}

async fn report(ctx: &Context) -> Result<NodeReport, Failure> {
    ctx.node
        .report()
        .await
        .ok_or_else(|| Failure::unavailable("ERR node is shutting down"))
}

fn section(name: &str, ctx: &Context, report: &NodeReport) -> Vec<String> {
    match name {
        "server" => server(ctx),
        "clients" => clients(ctx),
        "keyspace" => keyspace(report),
        _ => ringkv(ctx, report),
    }
}

fn server(ctx: &Context) -> Vec<String> {
    vec![
        "# Server".to_string(),
        format!("redis_version:{REDIS_VERSION}"),
        "server_name:ringkv".into(),
        format!("ringkv_version:{}", env!("CARGO_PKG_VERSION")),
        "redis_mode:standalone".into(),
        format!("process_id:{}", std::process::id()),
        format!("tcp_port:{}", ctx.port),
        format!("uptime_in_seconds:{}", ctx.started.elapsed().as_secs()),
    ]
}

fn clients(ctx: &Context) -> Vec<String> {
    vec![
        "# Clients".to_string(),
        format!("connected_clients:{}", ctx.clients.connected()),
        format!("maxclients:{}", ctx.max_clients),
        "blocked_clients:0".into(),
    ]
}

/// One database, `db0`, with the node's stored keys (see [`dbsize`]);
/// no line when there are none, as in Redis. Keys never expire.
fn keyspace(report: &NodeReport) -> Vec<String> {
    let keys = report.membership.stored_keys;
    let mut lines = vec!["# Keyspace".to_string()];
    if keys > 0 {
        lines.push(format!("db0:keys={keys},expires=0,avg_ttl=0"));
    }
    lines
}

fn ringkv(ctx: &Context, report: &NodeReport) -> Vec<String> {
    let members: Vec<&str> = report
        .membership
        .members
        .iter()
        .map(|m| m.id.as_str())
        .collect();
    vec![
        "# ringkv".to_string(),
        format!("node:{}", report.node),
        format!("cluster:{}", ctx.cluster),
        format!("members:{}", members.join(",")),
        format!("n:{}", report.n),
        format!("r:{}", report.r),
        format!("w:{}", report.w),
        format!("ring_fingerprint:{}", report.ring_fingerprint),
        format!("stored_keys:{}", report.membership.stored_keys),
        format!("stored_bytes:{}", report.membership.stored_bytes),
        // The bucket this port serves is typed: last-write-wins picks the
        // type, versions of a CRDT type are joined.
        format!("bucket:{}", ctx.bucket),
        "conflict_policy:typed".into(),
    ]
}
