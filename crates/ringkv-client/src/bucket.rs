//! Buckets as the client sees them (see [`ringkv_core::bucket`]): a
//! [`Bucket`] is fetched once (`Client::bucket`) and names where its keys
//! live, so reads and writes of its keys go straight to their coordinator.

use ringkv_core::bucket::{self, BucketProps};
use ringkv_core::keyspace::ConflictPolicy;
use serde::{Deserialize, Serialize};

/// A bucket and its properties, as a node showed them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Bucket {
    pub name: String,
    #[serde(flatten)]
    pub props: BucketProps,
}

impl Bucket {
    /// The internal key of `key` in this bucket, which the client routes by.
    pub(crate) fn routing_key(&self, key: &str) -> Vec<u8> {
        [
            bucket::prefix(&self.name, &self.props),
            key.as_bytes().to_vec(),
        ]
        .concat()
    }
}

/// What `Client::define_bucket` sends: every field optional. A definition
/// replaces the bucket's quorums, TTL and value limit (left out: the node
/// defaults); `n` and `policy` are fixed once the bucket exists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BucketDefinition {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<ConflictPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub w: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pw: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_value_bytes: Option<usize>,
}

/// `GET /buckets`.
#[derive(Deserialize)]
pub(crate) struct BucketList {
    pub buckets: Vec<Bucket>,
}
