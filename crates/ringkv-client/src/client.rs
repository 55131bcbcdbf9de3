//! The client: a fresh copy of the cluster's topology, routing, retries,
//! the get / put / delete / update API, and counters and sets
//! (incr / counter / sadd / srem / smembers).

use crate::bucket::{Bucket, BucketDefinition};
use crate::call::{self, KeysPage, Op};
use crate::error::Error;
use crate::http::Http;
use crate::refresh::{fetch_topology, refresh_periodically};
use crate::routing::{self, Health, Routing};
use crate::topology::Topology;
use crate::versions::{Context, Version, Versions};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;
use tokio::task::AbortHandle;

/// Per-call settings. The default uses the cluster's R and W and the
/// client's timeout.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Replies a read waits for (`1..=N`).
    pub r: Option<usize>,
    /// Acknowledgements a write waits for (`1..=N`).
    pub w: Option<usize>,
    /// Bound on each attempt (one node's answer).
    pub timeout: Option<Duration>,
    /// For a `put`: how long the value lives, in whole seconds (rounded
    /// up; at least one); it then reads as missing everywhere. `None`:
    /// for ever.
    pub ttl: Option<Duration>,
}

/// Settings of a [`Client`], then [`ClientBuilder::connect`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    routing: Routing,
    pub(crate) timeout: Duration,
    retries: usize,
    pub(crate) refresh_interval: Duration,
    token: Option<Token>,
    ca_pem: Option<Vec<u8>>,
}

/// A bearer token, kept out of `Debug` output and logs.
#[derive(Clone)]
struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            routing: Routing::PartitionAware,
            // Above a node's own worst case (a forwarded request retried on
            // every replica, about 8 s with the default 2 s quorum wait),
            // so a slow quorum is reported by the node, not cut short here.
            timeout: Duration::from_secs(10),
            retries: 2,
            refresh_interval: Duration::from_secs(30),
            token: None,
            ca_pem: None,
        }
    }
}

impl ClientBuilder {
    pub fn routing(mut self, routing: Routing) -> Self {
        self.routing = routing;
        self
    }

    /// Bound on each attempt unless a call sets its own.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Further nodes to try after a failed attempt: any failed read, a
    /// write whose node could not be reached (it was never delivered), and
    /// any operation a node shed as overloaded (`503` with `Retry-After`),
    /// after a backoff (see `call::backoff`).
    pub fn retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }

    /// How often the members and ring are fetched again. The client also
    /// refetches at once when a node's answer shows a different ring.
    pub fn refresh_interval(mut self, every: Duration) -> Self {
        self.refresh_interval = every;
        self
    }

    /// Send `token` as `Authorization: Bearer` on every request, the
    /// topology fetches included (`ringkv user add` makes tokens).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Token(token.into()));
        self
    }

    /// Talk HTTPS, trusting only the CA certificates in `pem` (PEM, one
    /// or more: the CA that signed the nodes' `[client_tls]` certificates).
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Fetch the topology from the first seed that answers and start
    /// keeping it fresh. Seeds are `host:port` HTTP addresses of any nodes
    /// (an `http://` or `https://` prefix is accepted; HTTPS is used when
    /// [`ClientBuilder::ca_certificate`] is given). Must run inside a tokio runtime.
    pub async fn connect<S: Into<String>>(
        self,
        seeds: impl IntoIterator<Item = S>,
    ) -> Result<Client, Error> {
        let seeds: Vec<String> = seeds.into_iter().map(normalize).collect();
        if seeds.is_empty() {
            return Err(Error::NoSeeds);
        }
        let token = self.token.as_ref().map(|Token(token)| token.as_str());
        let http = Http::new(token, self.ca_pem.as_deref())?;
        let topology = fetch_topology(&http, &seeds, self.timeout).await?;
        let inner = Arc::new(Inner {
            http,
            seeds,
            settings: self,
            topology: RwLock::new(Arc::new(topology)),
            health: Health::default(),
            next_seed: AtomicUsize::new(0),
            refreshing: AtomicBool::new(false),
            refresher: OnceLock::new(),
        });
        let task = tokio::spawn(refresh_periodically(Arc::downgrade(&inner)));
        let _ = inner.refresher.set(task.abort_handle());
        Ok(Client { inner })
    }
}

fn normalize(seed: impl Into<String>) -> String {
    let seed = seed.into();
    let seed = ["http://", "https://"]
        .iter()
        .find_map(|scheme| seed.strip_prefix(scheme))
        .unwrap_or(&seed);
    seed.trim_end_matches('/').to_string()
}

/// A handle on a cluster; cheap to clone, all clones share one topology,
/// connection pool and view of node health.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// What every clone of a [`Client`] shares.
pub(crate) struct Inner {
    pub(crate) http: Http,
    pub(crate) seeds: Vec<String>,
    pub(crate) settings: ClientBuilder,
    pub(crate) topology: RwLock<Arc<Topology>>,
    pub(crate) health: Health,
    /// Generic routing's rotation over the seeds.
    next_seed: AtomicUsize,
    /// A refresh triggered by a changed ring is under way.
    pub(crate) refreshing: AtomicBool,
    refresher: OnceLock<AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.refresher.get() {
            task.abort();
        }
    }
}

impl Client {
    /// [`ClientBuilder::connect`] with the defaults: partition-aware
    /// routing, 10 s per attempt, 2 retries, refresh every 30 s.
    pub async fn connect<S: Into<String>>(
        seeds: impl IntoIterator<Item = S>,
    ) -> Result<Client, Error> {
        ClientBuilder::default().connect(seeds).await
    }

    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Every live version of `key` (none when missing or deleted) and the
    /// context to write back with.
    pub async fn get(&self, key: &str) -> Result<Versions, Error> {
        self.get_with(key, &Options::default()).await
    }

    pub async fn get_with(&self, key: &str, options: &Options) -> Result<Versions, Error> {
        self.get_in(None, key, options).await
    }

    /// [`Client::get_with`] of a key of `bucket` (`None`: a `/kv` key).
    /// A `lww` bucket's read holds one version at most.
    pub async fn get_in(
        &self,
        bucket: Option<&Bucket>,
        key: &str,
        options: &Options,
    ) -> Result<Versions, Error> {
        let op = Op::Get {
            r: options.r,
            bucket,
        };
        self.call(key, &op, options).await?.versions()
    }

    /// Write `value` against `context` (a read's, or [`Context::none`] for
    /// a blind write); returns the new version's context.
    pub async fn put(
        &self,
        key: &str,
        value: impl AsRef<[u8]>,
        context: &Context,
    ) -> Result<Context, Error> {
        self.put_with(key, value, context, &Options::default())
            .await
    }

    pub async fn put_with(
        &self,
        key: &str,
        value: impl AsRef<[u8]>,
        context: &Context,
        options: &Options,
    ) -> Result<Context, Error> {
        self.put_in(None, key, value, context, options).await
    }

    /// [`Client::put_with`] of a key of `bucket` (`None`: a `/kv` key);
    /// the bucket's W and TTL apply unless `options` give their own.
    pub async fn put_in(
        &self,
        bucket: Option<&Bucket>,
        key: &str,
        value: impl AsRef<[u8]>,
        context: &Context,
        options: &Options,
    ) -> Result<Context, Error> {
        let op = Op::Put {
            bucket,
            w: options.w,
            value: value.as_ref(),
            context,
            ttl: options.ttl.map(whole_seconds),
        };
        self.call(key, &op, options).await?.written()
    }

    /// Delete what `context` saw; with [`Context::none`] the coordinator
    /// reads the key first (with the options' `r`) and deletes what it
    /// finds.
    pub async fn delete(&self, key: &str, context: &Context) -> Result<Context, Error> {
        self.delete_with(key, context, &Options::default()).await
    }

    pub async fn delete_with(
        &self,
        key: &str,
        context: &Context,
        options: &Options,
    ) -> Result<Context, Error> {
        self.delete_in(None, key, context, options).await
    }

    /// [`Client::delete_with`] of a key of `bucket` (`None`: a `/kv` key).
    pub async fn delete_in(
        &self,
        bucket: Option<&Bucket>,
        key: &str,
        context: &Context,
        options: &Options,
    ) -> Result<Context, Error> {
        let op = Op::Delete {
            bucket,
            r: options.r,
            w: options.w,
            context,
        };
        self.call(key, &op, options).await?.written()
    }

    /// Read `key`, turn its siblings (empty when missing) into one value
    /// with `resolve`, and write that back with the read's context, which
    /// supersedes every version read. A write that raced with this one
    /// stays as a sibling for the next update to merge: nothing is lost.
    /// Returns the written version's context.
    pub async fn update<F>(&self, key: &str, resolve: F) -> Result<Context, Error>
    where
        F: FnOnce(&[Version]) -> Vec<u8>,
    {
        self.update_with(key, &Options::default(), resolve).await
    }

    pub async fn update_with<F>(
        &self,
        key: &str,
        options: &Options,
        resolve: F,
    ) -> Result<Context, Error>
    where
        F: FnOnce(&[Version]) -> Vec<u8>,
    {
        let read = self.get_with(key, options).await?;
        let value = resolve(&read.siblings);
        self.put_with(key, value, &read.context, options).await
    }

    /// Add `by` (negative to subtract) to the counter `key` and return its
    /// new value — the counter Redis's `INCRBY key by` changes, a
    /// PN-counter (concurrent increments through any nodes all count).
    ///
    /// Never sent twice: only when a node answered that it did nothing
    /// (overloaded, `Error::Overloaded`) or could not be reached at all
    /// (`Error::Unreachable`) is it sent to the next node. After a timeout
    /// (`Error::Timeout`), a lost connection (`Error::Interrupted`), a
    /// `503` without `Retry-After` or a `504` it may or may not have been
    /// applied, and counts at most once: read the counter before trying
    /// again. A key holding a set, or a string that is not an integer, is
    /// refused (`409`).
    pub async fn incr(&self, key: &str, by: i64) -> Result<i64, Error> {
        self.incr_with(key, by, &Options::default()).await
    }

    pub async fn incr_with(&self, key: &str, by: i64, options: &Options) -> Result<i64, Error> {
        let op = Op::Incr { by, w: options.w };
        self.call(key, &op, options).await?.incremented()
    }

    /// The counter `key`'s value; `None` when the key holds nothing. A
    /// string holding an integer (Redis `SET key 10`) reads as it.
    pub async fn counter(&self, key: &str) -> Result<Option<i64>, Error> {
        self.counter_with(key, &Options::default()).await
    }

    pub async fn counter_with(&self, key: &str, options: &Options) -> Result<Option<i64>, Error> {
        let op = Op::Counter { r: options.r };
        self.call(key, &op, options).await?.counter()
    }

    /// Add `member` to the set `key` (Redis's `SADD`, an add-wins
    /// observed-remove set); true when it was not a member. A removed
    /// member can be added again, and an add concurrent with a remove wins.
    pub async fn sadd(&self, key: &str, member: &str) -> Result<bool, Error> {
        self.sadd_with(key, member, &Options::default()).await
    }

    pub async fn sadd_with(
        &self,
        key: &str,
        member: &str,
        options: &Options,
    ) -> Result<bool, Error> {
        let op = Op::SAdd {
            member,
            w: options.w,
        };
        self.call(key, &op, options).await?.changed("added")
    }

    /// Remove `member` from the set `key` (Redis's `SREM`): the additions
    /// of it that the coordinator has seen; true when it was a member.
    pub async fn srem(&self, key: &str, member: &str) -> Result<bool, Error> {
        self.srem_with(key, member, &Options::default()).await
    }

    pub async fn srem_with(
        &self,
        key: &str,
        member: &str,
        options: &Options,
    ) -> Result<bool, Error> {
        let op = Op::SRem {
            member,
            w: options.w,
        };
        self.call(key, &op, options).await?.changed("removed")
    }

    /// The members of the set `key` in byte order; none when the key holds
    /// nothing. A member that is not UTF-8 (only the Redis protocol can
    /// add one) makes it `Error::BadAnswer`.
    pub async fn smembers(&self, key: &str) -> Result<Vec<String>, Error> {
        self.smembers_with(key, &Options::default()).await
    }

    pub async fn smembers_with(&self, key: &str, options: &Options) -> Result<Vec<String>, Error> {
        let op = Op::SMembers { r: options.r };
        self.call(key, &op, options).await?.members()
    }

    /// Set `field` of the hash `key` to `value` (Redis's `HSET`; a field
    /// reads last-write-wins); true when the field was new. Never re-sent
    /// once a node may have applied it (a second copy could outlive an
    /// `HDEL` on the other side of a partition).
    pub async fn hset(&self, key: &str, field: &str, value: &[u8]) -> Result<bool, Error> {
        let options = Options::default();
        let op = Op::HSet {
            field,
            value,
            w: options.w,
        };
        self.call(key, &op, &options).await?.changed("added")
    }

    /// Add `by` to `field` of the hash `key` as a PN-counter (Redis's
    /// `HINCRBY`: concurrent increments all count); the field's new value.
    /// Never re-sent once a node may have applied it, as [`Client::incr`].
    pub async fn hincrby(&self, key: &str, field: &str, by: i64) -> Result<i64, Error> {
        let options = Options::default();
        let op = Op::HIncrBy {
            field,
            by,
            w: options.w,
        };
        self.call(key, &op, &options).await?.incremented()
    }

    /// Remove `field` from the hash `key` (Redis's `HDEL`); true when it
    /// was there.
    pub async fn hdel(&self, key: &str, field: &str) -> Result<bool, Error> {
        let options = Options::default();
        let op = Op::HDel {
            field,
            w: options.w,
        };
        self.call(key, &op, &options).await?.changed("removed")
    }

    /// Every field of the hash `key` and its value (a counter field as its
    /// decimal value); none when the key holds nothing.
    pub async fn hgetall(&self, key: &str) -> Result<BTreeMap<String, String>, Error> {
        let options = Options::default();
        let op = Op::HGetAll { r: options.r };
        self.call(key, &op, &options).await?.fields()
    }

    /// A page of the keys of `bucket` (`"default"`: the `/kv` keys;
    /// `"redis"`: the Redis protocol's), at most `limit` (1 to 10,000),
    /// from `after` (the `next` of the previous page; `None`: from the
    /// start). A page may hold fewer keys than `limit` while `next` is
    /// set; the listing is complete when it is `None`. A key present
    /// throughout a listing comes at least once.
    pub async fn keys_page(
        &self,
        bucket: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<KeysPage, Error> {
        let op = Op::Keys {
            bucket,
            limit,
            after,
        };
        self.call("", &op, &Options::default()).await?.keys()
    }

    /// Bucket `name` and its properties; [`Error::Server`] with status 404
    /// when the node knows none by that name.
    pub async fn bucket(&self, name: &str) -> Result<Bucket, Error> {
        self.call(name, &Op::Bucket, &Options::default())
            .await?
            .bucket()
    }

    /// Every bucket of the cluster, built-in ones (`default`, `redis`) first.
    pub async fn buckets(&self) -> Result<Vec<Bucket>, Error> {
        self.call("", &Op::Buckets, &Options::default())
            .await?
            .buckets()
    }

    /// Create or change bucket `name` (needs an admin token); the bucket
    /// as the node took it. Refusals are [`Error::Server`] with one sentence.
    pub async fn define_bucket(
        &self,
        name: &str,
        definition: &BucketDefinition,
    ) -> Result<Bucket, Error> {
        let body = serde_json::to_vec(definition).expect("a definition serializes");
        let op = Op::DefineBucket { body };
        self.call(name, &op, &Options::default()).await?.bucket()
    }

    /// Fetch the members and ring again now.
    pub async fn refresh(&self) -> Result<(), Error> {
        self.inner.refresh().await
    }

    /// Send `op` to the best node for `key`, then to the next ones while
    /// the failure allows it.
    async fn call(&self, key: &str, op: &Op<'_>, options: &Options) -> Result<call::Answer, Error> {
        let inner = &self.inner;
        let limit = options.timeout.unwrap_or(inner.settings.timeout);
        let topology = inner.topology();
        let first_seed = match inner.settings.routing {
            Routing::Generic => inner.next_seed.fetch_add(1, Ordering::Relaxed),
            Routing::PartitionAware => 0,
        };
        let nodes = routing::candidates(
            &topology,
            inner.settings.routing,
            &inner.health,
            &op.routing_key(key),
            &inner.seeds,
            first_seed,
        );
        let mut failure = Error::NoMembers;
        for (attempt, node) in nodes.iter().take(1 + inner.settings.retries).enumerate() {
            if let Error::Overloaded { retry_after, .. } = &failure {
                tokio::time::sleep(call::backoff(attempt, *retry_after)).await;
            }
            let request = op.request(&inner.http, node, key);
            match call::attempt(request, node, limit).await {
                Ok(answer) => {
                    inner.health.mark_up(node);
                    inner.check_ring(&topology, &answer);
                    return Ok(answer);
                }
                Err(error) => {
                    if !matches!(error, Error::Server { .. } | Error::Overloaded { .. }) {
                        inner.health.mark_down(node);
                    }
                    if !op.may_retry(&error) {
                        return Err(error);
                    }
                    failure = error;
                }
            }
        }
        Err(failure)
    }
}

/// `ttl` in whole seconds, rounded up, at least one: the server's unit.
fn whole_seconds(ttl: Duration) -> u64 {
    let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    seconds.max(1)
}
