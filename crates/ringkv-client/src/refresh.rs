//! Keeping the client's topology fresh: fetching `/ring`, on an interval
//! and on demand.

use crate::call::{self, RING_HEADER};
use crate::client::Inner;
use crate::error::Error;
use crate::http::Http;
use crate::topology::Topology;
use reqwest::{Method, StatusCode};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

impl Inner {
    pub(crate) fn topology(&self) -> Arc<Topology> {
        self.topology
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Ask the members (healthy first), then the seeds, for the topology;
    /// keep the old one when none answers.
    pub(crate) async fn refresh(&self) -> Result<(), Error> {
        let current = self.topology();
        let mut addrs: Vec<String> = Vec::new();
        let known = current.members.iter().map(|m| &m.addr).chain(&self.seeds);
        for addr in known {
            if !addrs.contains(addr) {
                addrs.push(addr.clone());
            }
        }
        let addrs = self.health.healthy_first(addrs);
        let fresh = fetch_topology(&self.http, &addrs, self.settings.timeout).await?;
        *self.topology.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// A node whose ring differs from ours (it changed, or ours is stale):
    /// fetch the topology again, in the background, once at a time.
    pub(crate) fn check_ring(self: &Arc<Self>, topology: &Topology, answer: &call::Answer) {
        let Some(theirs) = answer.headers.get(RING_HEADER) else {
            return;
        };
        if theirs.as_bytes() == topology.fingerprint.as_bytes()
            || self.refreshing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let inner = self.clone();
        tokio::spawn(async move {
            let _ = inner.refresh().await;
            inner.refreshing.store(false, Ordering::Release);
        });
    }
}

/// The topology from the first of `addrs` whose `/ring` answers with one;
/// the last failure when none does.
pub(crate) async fn fetch_topology(
    http: &Http,
    addrs: &[String],
    limit: Duration,
) -> Result<Topology, Error> {
    let mut failure = Error::NoSeeds;
    for addr in addrs {
        match ring_of(http, addr, limit).await {
            Ok(topology) => return Ok(topology),
            Err(error) => failure = error,
        }
    }
    Err(failure)
}

/// `addr`'s `/ring`; from a node without one (an older release answers
/// `404`), its `/status`, which has the same fields.
async fn ring_of(http: &Http, addr: &str, limit: Duration) -> Result<Topology, Error> {
    let request = http.request(Method::GET, addr, "/ring");
    let mut answer = call::attempt(request, addr, limit).await?;
    if answer.status == StatusCode::NOT_FOUND {
        let request = http.request(Method::GET, addr, "/status");
        answer = call::attempt(request, addr, limit).await?;
    }
    let topology = Topology::from_ring(&answer.body).map_err(|reason| Error::BadAnswer {
        node: addr.to_string(),
        reason,
    })?;
    if topology.members.is_empty() {
        return Err(Error::NoMembers);
    }
    Ok(topology)
}

/// Refetch the topology every `refresh_interval` while any clone of the
/// client lives.
pub(crate) async fn refresh_periodically(client: Weak<Inner>) {
    let Some(every) = client.upgrade().map(|c| c.settings.refresh_interval) else {
        return;
    };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // The first tick is immediate; connect just fetched.
    loop {
        ticks.tick().await;
        let Some(inner) = client.upgrade() else {
            return;
        };
        let _ = inner.refresh().await;
    }
}
