//! Buckets as the client sees them (see [`ringkv_core::bucket`]): a
//! [`Bucket`] is fetched once (`Client::bucket`) and names where its keys
//! live, so reads and writes of its keys go straight to their coordinator.

pub use ringkv_core::bucket::BucketDefinition;
use ringkv_core::bucket::{self, BucketProps};
use serde::Deserialize;

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

/// `GET /buckets`.
#[derive(Deserialize)]
pub(crate) struct BucketList {
    pub buckets: Vec<Bucket>,
}
