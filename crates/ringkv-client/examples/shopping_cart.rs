//! The shopping cart of the Dynamo paper, on a real local cluster, as a
//! set: four shoppers add and remove items in one cart at the same time,
//! through different nodes and both routing modes, while a node is killed
//! and restarted. The cart is ringkv's add-wins observed-remove set — the
//! one Redis's `SADD`/`SREM` change — so concurrent changes through any
//! nodes merge by themselves, a removal takes out what it saw, and a
//! removed item can be put back (each shopper changes their mind about
//! one). At the end the cart holds every item added except the ones
//! removed for good.
//!
//! ```sh
//! cargo run --example shopping_cart
//! ```
//!
//! It starts three node processes on free loopback ports — this program
//! re-executed as `node --config FILE`, the way `ringkv dev` starts its
//! nodes — with their data in a temporary directory, and stops them and
//! removes the directory when done (a few seconds).

use ringkv_client::{Client, Error, Options, Routing};
use ringkv_server::local::{self, LocalCluster};
use std::collections::BTreeSet;
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
/// Each shopper takes its 3rd and 7th item out again...
const REMOVED: [usize; 2] = [2, 6];
/// ...and puts the 3rd back at the end.
const PUT_BACK: usize = 2;
/// Attempts per cart change. A change cut off by the crash may or may not
/// have happened, so the shopper makes it again — safe, because adding or
/// removing an item twice is the same as once.
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

    let mut expected = BTreeSet::new();
    for task in tasks {
        let bought = task
            .await
            .map_err(|e| format!("a shopper panicked: {e}"))??;
        expected.extend(bought);
    }
    clock.say(&format!(
        "shoppers done: {} cart changes, {} retried after an error",
        tally.changes.load(Ordering::Relaxed),
        tally.retries.load(Ordering::Relaxed),
    ));

    check(&cluster, &expected, clock).await
}

/// Add every fruit (as `{name}-{fruit}`), one change at a time, take two
/// out again and put one of those back. Returns the items this shopper
/// leaves in the cart.
async fn shop(
    name: &str,
    client: &Client,
    tally: &Tally,
    clock: Clock,
) -> Result<BTreeSet<String>, String> {
    let item = |i: usize| format!("{name}-{}", FRUIT[i]);
    let mut mine = BTreeSet::new();
    for i in 0..FRUIT.len() {
        change(client, tally, clock, &item(i), true).await?;
        mine.insert(item(i));
        if REMOVED.contains(&i) {
            change(client, tally, clock, &item(i), false).await?;
            mine.remove(&item(i));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Changed their mind: the removed item goes back in, which a set
    // that remembers removals for ever (a two-phase set) cannot do.
    change(client, tally, clock, &item(PUT_BACK), true).await?;
    mine.insert(item(PUT_BACK));
    clock.say(&format!(
        "{name} done: {} items in, put {} back",
        mine.len(),
        item(PUT_BACK)
    ));
    Ok(mine)
}

/// One cart change (`SADD` or `SREM` of one item), made again after an
/// error.
async fn change(
    client: &Client,
    tally: &Tally,
    clock: Clock,
    item: &str,
    add: bool,
) -> Result<(), String> {
    let verb = if add { "add" } else { "remove" };
    let mut last: Option<Error> = None;
    for _ in 0..ATTEMPTS {
        if let Some(error) = &last {
            tally.retries.fetch_add(1, Ordering::Relaxed);
            clock.say(&format!("{verb} {item} failed ({error}); again"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let changed = if add {
            client.sadd(CART, item).await
        } else {
            client.srem(CART, item).await
        };
        match changed {
            Ok(_) => {
                tally.changes.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(error) => last = Some(error),
        }
    }
    Err(format!(
        "could not {verb} {item} after {ATTEMPTS} attempts: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// Read the cart from every replica and compare it with what the
/// shoppers did.
async fn check(
    cluster: &LocalCluster,
    expected: &BTreeSet<String>,
    clock: Clock,
) -> Result<(), String> {
    let client = Client::connect([cluster.http_addr(1).to_string()])
        .await
        .map_err(|e| e.to_string())?;
    let all = Options {
        r: Some(NODES),
        ..Options::default()
    };
    let cart: BTreeSet<String> = client
        .smembers_with(CART, &all)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    clock.say(&format!("final cart: {} items", cart.len()));
    println!(
        "  in the cart: {}",
        cart.iter().cloned().collect::<Vec<_>>().join(" ")
    );
    let missing: Vec<&String> = expected.difference(&cart).collect();
    let extra: Vec<&String> = cart.difference(expected).collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Err(format!(
            "the cart differs from what the shoppers did: missing {missing:?}, \
             not expected {extra:?}"
        ));
    }
    println!(
        "OK: every added item is in the cart, every removed one is out and every \
         one put back is in again, despite n{VICTIM} crashing mid-shopping"
    );
    Ok(())
}
