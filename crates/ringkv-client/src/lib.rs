//! ringkv-client: an async (tokio) client for a ringkv cluster.
//!
//! [`Client::connect`] asks any seed node for the cluster's members and
//! ring (`GET /ring`) and from then on computes each key's preference
//! list itself, exactly as the nodes do, so a request goes straight to the
//! key's coordinator instead of taking a forwarding hop through whichever
//! node it reached ([`Routing::PartitionAware`], the default).
//! [`Routing::Generic`] sends every request to the seeds in turn and lets
//! them forward, as a load balancer in front of the cluster would.
//!
//! ringkv never drops concurrent writes: a read may return several
//! versions (*siblings*) together with one causal [`Context`]. Writing back
//! with that context supersedes exactly the versions that were read.
//! [`Client::update`] does the whole read → resolve → write cycle, with a
//! resolver from [`resolve`] or your own.
//!
//! Counters and sets need no resolving: [`Client::incr`], [`Client::sadd`],
//! [`Client::srem`] (and [`Client::counter`], [`Client::smembers`]) change
//! the Redis keyspace's PN-counters and add-wins observed-remove sets,
//! which merge concurrent changes by themselves. An increment is never
//! sent to a second node once the first may have applied it.
//!
//! A cluster with client authentication wants a token:
//! `Client::builder().token(token).connect(seeds)` sends it as
//! `Authorization: Bearer` on every request; a missing, wrong or too weak
//! token comes back as [`Error::Server`] with status 401 or 403.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ringkv_client::Error> {
//! use ringkv_client::{resolve, Client, Context};
//! let client = Client::connect(["127.0.0.1:8101"]).await?;
//! client.put("greeting", "hello", &Context::none()).await?;
//! let versions = client.get("greeting").await?;
//! println!("{} version(s)", versions.siblings.len());
//! // Last-write-wins resolution of whatever siblings there are.
//! client.update("greeting", resolve::last_write_wins).await?;
//!
//! // A shopping cart: a set, which a removed item can come back to.
//! client.sadd("cart:ada", "apple").await?;
//! client.srem("cart:ada", "apple").await?;
//! client.sadd("cart:ada", "apple").await?;
//! assert_eq!(client.smembers("cart:ada").await?, ["apple"]);
//! // A counter: the one Redis's `INCR visits` changes.
//! let visits = client.incr("visits", 1).await?;
//! println!("visit number {visits}");
//! # Ok(())
//! # }
//! ```

mod bucket;
mod call;
mod client;
mod error;
mod http;
mod item_set;
mod refresh;
pub mod resolve;
mod routing;
mod topology;
mod versions;

pub use bucket::{Bucket, BucketDefinition};
pub use call::{encode_key, KeysPage, ListedKey};
pub use client::{Client, ClientBuilder, Options};
pub use error::Error;
pub use http::Http;
pub use item_set::{Item, ItemError, ItemSet};
pub use routing::Routing;
pub use versions::{Context, Version, Versions};
