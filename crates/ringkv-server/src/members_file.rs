//! The member list a node remembers across restarts (`members.json` in its
//! data directory): its own id and generation, and every member it knew.
//!
//! A restarted node keeps its id and therefore its tokens (they are derived
//! from the id), bumps its generation so its new entry beats the old one in
//! gossip, and starts from the ring it last saw instead of from its config —
//! a node that joined through seeds must not forget the cluster.
//!
//! The file also remembers the cluster settings the data was written with
//! ([`ClusterSettings`]: N, quorums, vnodes, limits): a node restarted with
//! others refuses to start, since it would place keys differently from its
//! peers and drop copies it still owes them. Changing them on a live
//! cluster is not supported.

use crate::config::NodeConfig;
use ringkv_core::bucket::BucketTable;
use ringkv_core::gossip::{MemberState, MemberStatus, Membership};
use ringkv_core::settings::{ClusterSettings, SettingDiff};
use ringkv_core::NodeId;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

const FILE: &str = "members.json";

#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    node_id: String,
    /// The cluster settings the data was written with; missing in files
    /// written before they were remembered.
    #[serde(default)]
    settings: Option<ClusterSettings>,
    /// All that such older files remember of the settings; checked when
    /// `settings` is missing, and no longer written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vnodes: Option<u32>,
    members: Vec<MemberState>,
    /// The cluster's buckets (cluster data that gossip spreads; kept here
    /// so a restart, even of a whole cluster, remembers them).
    #[serde(default)]
    buckets: BucketTable,
}

#[derive(Debug, thiserror::Error)]
pub enum MembersFileError {
    #[error("cannot use {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path} belongs to node {saved}, not {configured}; use another data_dir")]
    OtherNode {
        path: PathBuf,
        saved: String,
        configured: String,
    },
    #[error(
        "{path} was written with other cluster settings: {reason}; changing N or any other \
         placement setting on a live cluster is not supported, so start this node with the \
         settings its data was written with"
    )]
    Settings { path: PathBuf, reason: String },
    #[error(
        "node {id} was removed from the cluster (its entry in {path} says so) and may not serve \
         its old data again; start a new node with a new id and an empty data directory \
         (ringkv node --replace {id} to take over its ranges)"
    )]
    Removed { path: PathBuf, id: String },
}

/// Load the remembered member list (or build the first one from the
/// config), with this node's generation bumped, and save it at once so the
/// bump is durable before the node says anything.
pub fn start(config: &NodeConfig) -> Result<Membership, MembersFileError> {
    let path = config.data_dir.join(FILE);
    let settings = config.settings();
    let cluster = settings.cluster();
    let saved = load(&path)?;
    let first_life = saved.is_none();
    let buckets = saved
        .as_ref()
        .map(|s| s.buckets.clone())
        .unwrap_or_default();
    let (me, known) = match saved {
        Some(saved) => restored(config, &path, saved, &cluster)?,
        None => first_start(config),
    };
    let seeds = config.seeds.iter().map(ToString::to_string).collect();
    let mut members = Membership::new(me, known, seeds, settings.membership).with_buckets(buckets);
    if first_life {
        members = members.first_life();
    }
    save(&config.data_dir, &members, &cluster)?;
    Ok(members)
}

/// Write the member list and the cluster settings (atomically: temp file,
/// fsync, rename).
pub fn save(
    dir: &Path,
    members: &Membership,
    settings: &ClusterSettings,
) -> Result<(), MembersFileError> {
    let path = dir.join(FILE);
    let saved = Saved {
        node_id: members.id().to_string(),
        settings: Some(settings.clone()),
        vnodes: None,
        members: members.members().cloned().collect(),
        buckets: members.buckets().clone(),
    };
    let io = |e: std::io::Error| MembersFileError::Io {
        path: path.clone(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let text = serde_json::to_vec_pretty(&saved).map_err(|e| io(e.into()))?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(&text).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

fn load(path: &Path) -> Result<Option<Saved>, MembersFileError> {
    let io = |message: String| MembersFileError::Io {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(e.to_string())),
    }
}

/// A restart: the saved list, this node's entry renewed from the config
/// (addresses may have changed) with the next generation.
fn restored(
    config: &NodeConfig,
    path: &Path,
    saved: Saved,
    settings: &ClusterSettings,
) -> Result<(MemberState, Vec<MemberState>), MembersFileError> {
    if saved.node_id != config.node_id {
        return Err(MembersFileError::OtherNode {
            path: path.to_path_buf(),
            saved: saved.node_id,
            configured: config.node_id.clone(),
        });
    }
    if let Some(diff) = settings_changed(&saved, settings) {
        return Err(MembersFileError::Settings {
            path: path.to_path_buf(),
            reason: diff.sentence("the config", "the data directory"),
        });
    }
    let id = NodeId::new(&config.node_id);
    let (mine, others): (Vec<MemberState>, Vec<MemberState>) =
        saved.members.into_iter().partition(|m| m.id == id);
    let before = mine.into_iter().next();
    if before.as_ref().is_some_and(|m| m.status.is_removed()) {
        return Err(MembersFileError::Removed {
            path: path.to_path_buf(),
            id: config.node_id.clone(),
        });
    }
    let me = MemberState {
        generation: before.as_ref().map_or(0, |m| m.generation) + 1,
        version: 0,
        suspects: Default::default(),
        // A replacement stays one across restarts.
        replaces: before.as_ref().and_then(|m| m.replaces.clone()),
        // Kept: a restart is the same life (a file from before
        // incarnations gets one now).
        incarnation: before
            .as_ref()
            .map(|m| m.incarnation)
            .filter(|i| *i != 0)
            .unwrap_or_else(new_incarnation),
        ..own_entry(config, before.map_or(MemberStatus::Member, |m| m.status))
    };
    Ok((me, others))
}

/// How the configured settings differ from those the file remembers (only
/// `vnodes` for a file from before the whole set was remembered).
fn settings_changed(saved: &Saved, configured: &ClusterSettings) -> Option<SettingDiff> {
    match (&saved.settings, saved.vnodes) {
        (Some(remembered), _) => configured.diff(remembered),
        (None, Some(vnodes)) if vnodes != configured.vnodes => Some(SettingDiff {
            setting: "replication vnodes",
            ours: u64::from(configured.vnodes),
            theirs: u64::from(vnodes),
        }),
        (None, _) => None,
    }
}

/// The first start: joining through seeds, or one of a static member list.
fn first_start(config: &NodeConfig) -> (MemberState, Vec<MemberState>) {
    if !config.seeds.is_empty() {
        let me = MemberState {
            generation: 1,
            replaces: config.replace.as_deref().map(NodeId::new),
            ..own_entry(config, MemberStatus::Joining)
        };
        return (me, Vec::new());
    }
    let known = config
        .nodes
        .iter()
        .map(|m| MemberState {
            zone: m.zone.clone(),
            addr: Some(m.addr.to_string()),
            http: Some(m.http.to_string()),
            ..MemberState::new(NodeId::new(&m.id), MemberStatus::Member)
        })
        .collect();
    let me = MemberState {
        generation: 1,
        ..own_entry(config, MemberStatus::Member)
    };
    (me, known)
}

/// A random incarnation for a new data directory (never 0, which means
/// "unknown"); std's hasher keys are random per process.
fn new_incarnation() -> u64 {
    use std::hash::BuildHasher;
    let now = std::time::SystemTime::now();
    let random = std::collections::hash_map::RandomState::new();
    random.hash_one((now, std::process::id())).max(1)
}

fn own_entry(config: &NodeConfig, status: MemberStatus) -> MemberState {
    let mine = config.me().expect("validated: node_id is in [[nodes]]");
    MemberState {
        incarnation: new_incarnation(),
        zone: mine.zone.clone(),
        addr: Some(mine.addr.to_string()),
        http: Some(mine.http.to_string()),
        ..MemberState::new(NodeId::new(&config.node_id), status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_core::settings::Settings;

    fn config(dir: &Path, extra: &str) -> NodeConfig {
        NodeConfig::parse(&format!(
            r#"{extra}
            insecure = true
            node_id = "n1"
            data_dir = "{}"
            [[nodes]]
            id = "n1"
            addr = "127.0.0.1:7101"
            http = "127.0.0.1:8101"
            "#,
            dir.display()
        ))
        .unwrap()
    }

    #[test]
    fn a_restart_keeps_the_members_and_bumps_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let joining = config(dir.path(), r#"seeds = ["127.0.0.1:7102"]"#);
        let first = start(&joining).unwrap();
        assert_eq!(first.me().status, MemberStatus::Joining);
        let again = start(&config(dir.path(), "")).unwrap();
        assert_eq!(again.me().generation, first.me().generation + 1);
        assert_eq!(
            again.me().status,
            MemberStatus::Joining,
            "remembered, not re-read"
        );
    }

    /// [`config`] with its `[replication]` settings changed.
    fn replicating(dir: &Path, change: impl FnOnce(&mut Settings)) -> NodeConfig {
        let mut config = config(dir, "");
        change(&mut config.replication);
        config
    }

    #[test]
    fn a_data_dir_written_with_other_settings_is_refused_naming_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        start(&config(dir.path(), "")).unwrap();
        let other_n = replicating(dir.path(), |s| (s.n, s.r, s.w) = (2, 1, 1));
        let err = start(&other_n).unwrap_err().to_string();
        assert!(
            err.contains("replication n differs: the config has 2, the data directory has 3"),
            "{err}"
        );
        assert!(err.contains("not supported"), "{err}");
        let other_limit = replicating(dir.path(), |s| s.max_siblings = 8);
        let err = start(&other_limit).unwrap_err().to_string();
        assert!(err.contains("replication max_siblings differs"), "{err}");
        // Per-node tuning may change across restarts.
        let tuned = replicating(dir.path(), |s| s.request_timeout_ms = 50);
        start(&tuned).unwrap();
    }

    #[test]
    fn a_file_from_before_settings_were_remembered_is_checked_for_vnodes_and_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = r#"{"node_id": "n1", "vnodes": 64, "members": []}"#;
        std::fs::write(dir.path().join(FILE), legacy).unwrap();
        let err = start(&config(dir.path(), "")).unwrap_err().to_string();
        assert!(
            err.contains(
                "replication vnodes differs: the config has 128, the data directory has 64"
            ),
            "{err}"
        );
        let legacy = r#"{"node_id": "n1", "vnodes": 128, "members": []}"#;
        std::fs::write(dir.path().join(FILE), legacy).unwrap();
        start(&config(dir.path(), "")).unwrap();
        let err = start(&replicating(dir.path(), |s| s.w = 3))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("replication w differs"),
            "now remembered: {err}"
        );
    }

    #[test]
    fn another_nodes_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        start(&config(dir.path(), "")).unwrap();
        let mut other = config(dir.path(), "");
        other.node_id = "n2".into();
        other.nodes[0].id = "n2".into();
        let err = start(&other).unwrap_err().to_string();
        assert!(err.contains("belongs to node n1"), "{err}");
    }
}
