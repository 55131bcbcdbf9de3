//! `ringkv user add|remove|list`: manage a users file (see
//! `ringkv_server::auth`). Running nodes re-read it when it changes.

use ringkv_server::auth::{add_user, remove_user, Role, Users};
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
    /// Remove a user: their token stops working once nodes re-read the
    /// file (within seconds).
    Remove {
        name: String,
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
                 token, so it cannot be shown again: keep it now (running nodes pick \
                 it up within seconds)",
                users_file.display()
            );
            Ok(())
        }
        UserCommand::Remove { name, users_file } => {
            remove_user(&users_file, &name).map_err(|e| e.to_string())?;
            eprintln!("user {name} removed from {}", users_file.display());
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
