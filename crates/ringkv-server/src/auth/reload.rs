//! Re-reading the users file while the node runs, so `ringkv user add`
//! and `ringkv user remove` take effect without a restart.
//!
//! Polled: one `stat` every [`RELOAD_INTERVAL`] compares the file's inode,
//! modification time and size (the CLI replaces the file by a rename, so
//! the inode changes with every edit it makes). A file that no longer
//! parses is reported and the users loaded before are kept: a typo must
//! not lock everyone out, nor let everyone in.

use super::access::Access;
use super::users::Users;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;

pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// What tells one version of the file from the next.
type Stamp = Option<(u64, i64, i64, u64)>;

async fn stamp(path: &Path) -> Stamp {
    let m = tokio::fs::metadata(path).await.ok()?;
    Some((m.ino(), m.mtime(), m.mtime_nsec(), m.len()))
}

/// Reload `path` into `access` whenever it changes, while `access` lives.
pub async fn watch_users(access: Weak<Access>, path: PathBuf) {
    let mut seen = stamp(&path).await;
    loop {
        tokio::time::sleep(RELOAD_INTERVAL).await;
        let Some(access) = access.upgrade() else {
            return;
        };
        let now = stamp(&path).await;
        if now == seen {
            continue;
        }
        seen = now;
        match Users::load(&path) {
            Ok(users) => {
                tracing::info!(
                    "users file {} reloaded: {} users",
                    path.display(),
                    users.all().len()
                );
                access.replace_users(users);
            }
            Err(e) => tracing::warn!("{e}; keeping the users loaded before"),
        }
    }
}
