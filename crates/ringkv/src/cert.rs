//! `ringkv cert`: create the cluster CA and node certificates that
//! inter-node mutual TLS needs (CockroachDB's `cert create-ca` /
//! `create-node`).

use ringkv_server::tls::certs::{self, Written, CA_DAYS, NODE_DAYS};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum CertCommand {
    /// Create the cluster's CA: CERTS_DIR/ca.pem and ca.key.
    CreateCa {
        #[arg(long, default_value = "certs")]
        certs_dir: PathBuf,
        /// Cluster name, written into the CA's name.
        #[arg(long, default_value = "ringkv")]
        cluster: String,
        #[arg(long, default_value_t = CA_DAYS)]
        days: u32,
    },
    /// Create a node's certificate, signed by CERTS_DIR/ca.pem and ca.key:
    /// CERTS_DIR/ID.pem and ID.key.
    CreateNode {
        #[arg(long, default_value = "certs")]
        certs_dir: PathBuf,
        /// The node id, as in the node's config.
        #[arg(long)]
        id: String,
        /// Address or DNS name clients reach the node by (repeatable), so
        /// its HTTPS and RESP TLS can be checked against it.
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long, default_value_t = NODE_DAYS)]
        days: u32,
    },
}

pub fn run(command: CertCommand) -> Result<(), String> {
    let written = match command {
        CertCommand::CreateCa {
            certs_dir,
            cluster,
            days,
        } => certs::create_ca(&certs_dir, &cluster, days),
        CertCommand::CreateNode {
            certs_dir,
            id,
            hosts,
            days,
        } => certs::create_node(&certs_dir, &id, &hosts, days),
    }
    .map_err(|e| e.to_string())?;
    print_written(&written);
    Ok(())
}

/// Names the files, never their contents.
fn print_written(written: &Written) {
    println!("wrote {} (certificate)", written.cert.display());
    println!("wrote {} (private key, mode 0600)", written.key.display());
}
