//! `ringkv bucket create|list|show`: buckets, each with its own conflict
//! policy, quorums, default TTL and value limit (see
//! [`ringkv_core::bucket`]).

use crate::client::Routed;
use ringkv_client::{Bucket, BucketDefinition};
use ringkv_core::keyspace::ConflictPolicy;

#[derive(clap::Subcommand)]
pub enum BucketCommand {
    /// Create a bucket, or change one (its n and policy are fixed once it
    /// exists; whatever else is left out goes back to the node defaults).
    /// Needs an admin token.
    Create {
        name: String,
        #[command(flatten)]
        routed: Routed,
        /// Replicas of each key, 1 to the cluster's n (default: the
        /// cluster's; fixed at creation).
        #[arg(long)]
        n: Option<usize>,
        /// siblings (concurrent writes kept for the client to merge), lww
        /// (the latest write wins) or typed (Redis-style CRDT values).
        #[arg(long, value_parser = parse_policy)]
        policy: Option<ConflictPolicy>,
        #[arg(long)]
        r: Option<usize>,
        #[arg(long)]
        w: Option<usize>,
        #[arg(long)]
        pw: Option<usize>,
        /// Seconds a value written without its own TTL lives (HTTP PUT,
        /// Redis SET; Redis counters and collections take EXPIRE).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        ttl: Option<u64>,
        /// The largest value a write may carry, bytes.
        #[arg(long)]
        max_value_bytes: Option<usize>,
    },
    /// List the cluster's buckets and their properties.
    List {
        #[command(flatten)]
        routed: Routed,
    },
    /// Show one bucket's properties.
    Show {
        name: String,
        #[command(flatten)]
        routed: Routed,
    },
}

fn parse_policy(text: &str) -> Result<ConflictPolicy, String> {
    match text {
        "siblings" => Ok(ConflictPolicy::Siblings),
        "lww" => Ok(ConflictPolicy::Lww),
        "typed" => Ok(ConflictPolicy::Typed),
        other => Err(format!("{other:?} is not a policy: siblings, lww or typed")),
    }
}

pub async fn run(command: BucketCommand) -> Result<(), String> {
    match command {
        BucketCommand::Create {
            name,
            routed,
            n,
            policy,
            r,
            w,
            pw,
            ttl,
            max_value_bytes,
        } => {
            let client = routed.connect().await?;
            let definition = BucketDefinition {
                n,
                policy,
                r,
                w,
                pw,
                ttl_seconds: ttl,
                max_value_bytes,
            };
            let bucket = client
                .define_bucket(&name, &definition)
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", line(&bucket));
            Ok(())
        }
        BucketCommand::List { routed } => {
            let client = routed.connect().await?;
            let buckets = client.buckets().await.map_err(|e| e.to_string())?;
            for bucket in &buckets {
                println!("{}", line(bucket));
            }
            Ok(())
        }
        BucketCommand::Show { name, routed } => {
            let client = routed.connect().await?;
            let bucket = client.bucket(&name).await.map_err(|e| e.to_string())?;
            println!("{}", line(&bucket));
            Ok(())
        }
    }
}

/// `carts  n=3 policy=siblings r=2 w=2 ttl=3600s`: what is not shown is
/// the node default.
fn line(bucket: &Bucket) -> String {
    let p = &bucket.props;
    let mut fields = vec![format!("n={}", p.n), format!("policy={}", p.policy.name())];
    for (name, value) in [("r", p.r), ("w", p.w), ("pw", p.pw)] {
        if let Some(v) = value {
            fields.push(format!("{name}={v}"));
        }
    }
    if let Some(ttl) = p.ttl_seconds {
        fields.push(format!("ttl={ttl}s"));
    }
    if let Some(max) = p.max_value_bytes {
        fields.push(format!("max_value_bytes={max}"));
    }
    format!("{}\t{}", bucket.name, fields.join(" "))
}
