//! Users files for tests of client authentication, made with the real
//! `ringkv user add`.

use super::run_cli;
use std::path::PathBuf;
use std::time::Duration;

const CLI_LIMIT: Duration = Duration::from_secs(30);

/// A users file with one user of each role, made by the CLI.
pub struct Users {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub admin: String,
    pub writer: String,
    pub reader: String,
}

impl Users {
    pub async fn new() -> Users {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users.toml");
        let file = path.to_str().expect("utf-8 temp path");
        let add = |name: &'static str, role: &'static str| async move {
            let args = ["user", "add", name, "--role", role, "--users-file", file];
            run_cli(&args, CLI_LIMIT).await.trim().to_string()
        };
        let (admin, writer, reader) = (
            add("admin", "admin").await,
            add("w", "write").await,
            add("r", "read").await,
        );
        Users {
            path: path.clone(),
            _dir: dir,
            admin,
            writer,
            reader,
        }
    }

    /// The `[auth]` section naming this file.
    pub fn toml(&self, anonymous: Option<&str>) -> String {
        let anonymous = anonymous.map_or(String::new(), |role| format!("anonymous = \"{role}\"\n"));
        format!("[auth]\nusers = {:?}\n{anonymous}", self.path)
    }
}
