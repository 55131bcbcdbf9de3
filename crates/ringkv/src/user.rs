//! `ringkv user add|list`: manage a users file (see
//! `ringkv_server::auth`). Nodes read it when they start.

use ringkv_server::auth::{add_user, Role, Users};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// Add a user with a new token; prints the token once, on stdout.
    Add {
        name: String,
        /// read, write or admin.
        #[arg(long)]
        role: Role,
        /// The users file (created, owner-only, when missing).
        #[arg(long)]
        users_file: PathBuf,
    },
    /// List the users of a users file: names and roles.
    List {
        #[arg(long)]
        users_file: PathBuf,
    },
}

pub fn run(command: UserCommand) -> Result<(), String> {
    match command {
        UserCommand::Add {
            name,
            role,
            users_file,
        } => {
            let token = add_user(&users_file, &name, role).map_err(|e| e.to_string())?;
            println!("{token}");
            eprintln!(
                "user {name} ({role}) added to {}; the file keeps only a hash of this \
                 token, so it cannot be shown again: keep it now (nodes read the file \
                 when they start)",
                users_file.display()
            );
            Ok(())
        }
        UserCommand::List { users_file } => {
            let users = Users::load(&users_file).map_err(|e| e.to_string())?;
            for user in users.all() {
                println!("{}\t{}", user.name, user.role);
            }
            Ok(())
        }
    }
}
