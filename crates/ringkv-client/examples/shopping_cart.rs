//! The shopping cart of the Dynamo paper, on a real local cluster: four
//! shoppers add and remove items in one cart at the same time, through
//! different nodes and both routing modes, while a node is killed and
//! restarted. Concurrent writes come back as siblings, the set-union
//! resolver merges them, and at the end the cart holds every item added
//! except the ones removed.
//!
//! ```sh
//! cargo run --example shopping_cart
//! ```
//!
//! It starts three node processes on free loopback ports — this program
//! re-executed as `node --config FILE`, the way `ringkv dev` starts its
//! nodes — with their data in a temporary directory, and stops them and
//! removes the directory when done (a few seconds).

use ringkv_client::{resolve, Client, Error, Item, ItemSet, Options, Routing};
use ringkv_server::local::{self, LocalCluster};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CART: &str = "cart:family";
const NODES: usize = 3;
/// The node that crashes.
const VICTIM: usize = 2;
const FRUIT: [&str; 10] = [
    "apple", "banana", "cherry", "date", "fig", "grape", "kiwi", "lemon", "mango", "pear",
];
/// Each shopper takes its 3rd and 7th item out again.
const REMOVED: [usize; 2] = [2, 6];
/// Attempts per cart change: a change is a read, a merge and a write, and
/// a write cut off by the crash may or may not have happened, so the
/// shopper does the whole change again — safe, because adding or removing
/// an item twice is the same as once.
const ATTEMPTS: usize = 10;

fn main() -> ExitCode {
    if let Some(code) = local::run_if_node_process() {
        return code;
    }
    let outcome = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the runtime: {e}"))
        .and_then(|runtime| runtime.block_on(demo()));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a line prefixed with the time since the start.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn say(&self, line: &str) {
        println!("[{:>5} ms] {line}", self.0.elapsed().as_millis());
    }
}

#[derive(Default)]
struct Tally {
    changes: AtomicUsize,
    retries: AtomicUsize,
    /// Reads that found concurrent versions to merge.
    conflicts: AtomicUsize,
}

async fn demo() -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("ringkv-cart-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let mut cluster = LocalCluster::start_self(dir.path(), NODES)
        .await
        .map_err(|e| e.to_string())?;
    let clock = Clock(Instant::now());
    clock.say(&format!(
        "cluster up: {}",
        (1..=NODES)
            .map(|i| format!("n{i} http://{}", cluster.http_addr(i)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    // Let the nodes' links to each other come up before the first quorum.
    tokio::time::sleep(Duration::from_millis(400)).await;

    let tally = Arc::new(Tally::default());
    let shoppers = ["ada", "bob", "cy", "dee"];
    let mut tasks = Vec::new();
    for (s, name) in shoppers.into_iter().enumerate() {
        let seed = cluster.http_addr(1 + s % NODES).to_string();
        let routing = [Routing::PartitionAware, Routing::Generic][s % 2];
        let client = Client::builder()
            .routing(routing)
            .timeout(Duration::from_secs(5))
            .connect([seed.clone()])
            .await
            .map_err(|e| e.to_string())?;
        clock.say(&format!("{name} shops via {seed}, {routing:?} routing"));
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            shop(name, &client, &tally, clock).await
        }));
    }

    // The crash: SIGKILL one node mid-shopping, restart it while the
    // shoppers are still at it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill(VICTIM);
    clock.say(&format!("n{VICTIM} killed (SIGKILL)"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    cluster.restart(VICTIM).map_err(|e| e.to_string())?;
    cluster
        .wait_until_up(Duration::from_secs(30))
        .await
        .map_err(|e| e.to_string())?;
    clock.say(&format!("n{VICTIM} restarted"));

    let mut expected = ItemSet::new();
    for task in tasks {
        let bought = task
            .await
            .map_err(|e| format!("a shopper panicked: {e}"))??;
        expected.merge(&bought);
    }
    clock.say(&format!(
        "shoppers done: {} cart changes, {} retried after an error, {} reads merged siblings",
        tally.changes.load(Ordering::Relaxed),
        tally.retries.load(Ordering::Relaxed),
        tally.conflicts.load(Ordering::Relaxed),
    ));

    check(&cluster, &expected, clock).await
}

/// Add every fruit (as `{name}-{fruit}`), one change at a time, and take
/// two out again. Returns what this shopper's cart changes amount to.
async fn shop(name: &str, client: &Client, tally: &Tally, clock: Clock) -> Result<ItemSet, String> {
    let mut mine = ItemSet::new();
    for (i, fruit) in FRUIT.iter().enumerate() {
        let item = Item::new(format!("{name}-{fruit}")).map_err(|e| e.to_string())?;
        change(client, tally, clock, name, &item, true).await?;
        mine.add(&item);
        if REMOVED.contains(&i) {
            change(client, tally, clock, name, &item, false).await?;
            mine.remove(&item);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    clock.say(&format!(
        "{name} done: {} items in, {} taken out",
        mine.len(),
        mine.removed().count()
    ));
    Ok(mine)
}

/// One cart change: read, merge the siblings, add or remove, write back.
async fn change(
    client: &Client,
    tally: &Tally,
    clock: Clock,
    name: &str,
    item: &Item,
    add: bool,
) -> Result<(), String> {
    let verb = if add { "add" } else { "remove" };
    let mut last: Option<Error> = None;
    for _ in 0..ATTEMPTS {
        if let Some(error) = &last {
            tally.retries.fetch_add(1, Ordering::Relaxed);
            clock.say(&format!(
                "{name}: {verb} {} failed ({error}); again",
                item.as_str()
            ));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let updated = client
            .update(CART, |siblings| {
                if siblings.len() > 1 {
                    tally.conflicts.fetch_add(1, Ordering::Relaxed);
                }
                let mut cart = ItemSet::union(siblings);
                if add {
                    cart.add(item);
                } else {
                    cart.remove(item);
                }
                cart.encode()
            })
            .await;
        match updated {
            Ok(_) => {
                tally.changes.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(error) => last = Some(error),
        }
    }
    Err(format!(
        "{name} could not {verb} {} after {ATTEMPTS} attempts: {}",
        item.as_str(),
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// Merge the cart's siblings into one version, read it from every replica
/// and compare it with what the shoppers did.
async fn check(cluster: &LocalCluster, expected: &ItemSet, clock: Clock) -> Result<(), String> {
    let client = Client::connect([cluster.http_addr(1).to_string()])
        .await
        .map_err(|e| e.to_string())?;
    let all = Options {
        r: Some(NODES),
        ..Options::default()
    };
    let before = client
        .get_with(CART, &all)
        .await
        .map_err(|e| e.to_string())?;
    client
        .update_with(CART, &all, resolve::set_union)
        .await
        .map_err(|e| e.to_string())?;
    let after = client
        .get_with(CART, &all)
        .await
        .map_err(|e| e.to_string())?;
    let cart = ItemSet::union(&after.siblings);
    clock.say(&format!(
        "final cart: {} version(s) before the set-union merge, {} after; {} items, {} removed",
        before.siblings.len(),
        after.siblings.len(),
        cart.len(),
        cart.removed().count()
    ));
    println!(
        "  in the cart: {}",
        cart.items().collect::<Vec<_>>().join(" ")
    );
    println!(
        "  removed:     {}",
        cart.removed().collect::<Vec<_>>().join(" ")
    );
    if cart != *expected {
        return Err(format!(
            "the cart differs from what the shoppers did: expected {:?}",
            expected.items().collect::<Vec<_>>()
        ));
    }
    println!(
        "OK: every added item is in the cart and every removed one is out, \
         despite n{VICTIM} crashing mid-shopping"
    );
    Ok(())
}
