//! The web console end to end: real node processes, the page loaded in
//! headless Chromium (driven over the DevTools protocol), and what it
//! renders read from its DOM — the text a person sees, not the JSON
//! behind it. One page stays open while the cluster changes, so what is
//! tested is the live refresh, not a fresh load.

mod common;

use common::browser::Browser;
use common::users::Users;
use common::{eventually, Cluster};
use reqwest::Method;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Fast failure detection, so suspicion and agreement on "down" take
/// seconds; the same on every node.
const FAST_GOSSIP: &str =
    "[membership]\ngossip_interval_ms = 200\nprobe_interval_ms = 200\nsuspect_after_ms = 2000\n";
/// Generous: Chromium and three nodes share two busy cores.
const LIMIT: Duration = Duration::from_secs(90);

/// The members table as shown: `(node, status, suspected by)` per row.
const MEMBERS: &str = "JSON.stringify([...document.querySelectorAll('#members-body tr')]\
    .map(row => [...row.querySelectorAll('td')].slice(0, 3).map(td => td.textContent.trim())))";

/// The ring as drawn: per owner, its vnodes and the distinct fill colours
/// they have.
const RING_COLOURS: &str = "JSON.stringify([...document.querySelectorAll('#ring path.vnode')]\
    .reduce((by, p) => { const o = p.dataset.owner, f = p.getAttribute('fill'); \
      by[o] = by[o] || [0, []]; by[o][0]++; if (!by[o][1].includes(f)) by[o][1].push(f); \
      return by; }, {}))";

async fn members(browser: &mut Browser) -> Result<Vec<[String; 3]>, String> {
    let text = browser.eval(MEMBERS).await?;
    let text = text
        .as_str()
        .ok_or("the members expression gave no string")?;
    serde_json::from_str(text).map_err(|e| format!("{e}: {text}"))
}

/// Wait until the page's members table reads exactly `want`.
async fn shows(browser: &mut Browser, what: &str, want: [[&str; 3]; 3]) {
    eventually(LIMIT, what, async || {
        let rows = members(browser).await?;
        let same =
            rows.len() == want.len() && rows.iter().zip(&want).all(|(row, want)| row == want);
        same.then_some(()).ok_or(format!("{rows:?}"))
    })
    .await;
}

/// A number the page shows (a JavaScript expression giving a number).
async fn number(browser: &mut Browser, expression: &str) -> Result<u64, String> {
    let value = browser.eval(expression).await?;
    value.as_u64().ok_or(format!("{expression} gave {value}"))
}

#[tokio::test]
async fn the_console_shows_a_node_turn_suspect_then_down() {
    let mut c = Cluster::start_with(3, FAST_GOSSIP).await;
    let mut browser = Browser::start().await;
    browser.open(&c.url(1, "/")).await; // The root redirects to /ui.

    let up = [["n1", "up", "—"], ["n2", "up", "—"], ["n3", "up", "—"]];
    shows(&mut browser, "the console shows three members up", up).await;
    // The ring: every vnode of every member, coloured by owner.
    let vnodes = "document.querySelectorAll('#ring path.vnode').length";
    eventually(LIMIT, "the ring has 3 x 128 vnodes", async || {
        let drawn = number(&mut browser, vnodes).await?;
        (drawn == 3 * 128).then_some(()).ok_or(format!("{drawn}"))
    })
    .await;
    let colours = browser
        .eval(RING_COLOURS)
        .await
        .expect("the ring's colours");
    let colours: BTreeMap<String, (u64, Vec<String>)> =
        serde_json::from_str(colours.as_str().unwrap_or("")).expect("owner -> (vnodes, fills)");
    let fills: BTreeSet<&Vec<String>> = colours.values().map(|(_, fills)| fills).collect();
    assert_eq!(colours.len(), 3, "{colours:?}");
    assert_eq!(fills.len(), 3, "one colour per owner: {colours:?}");
    for (owner, (vnodes, fills)) in &colours {
        assert_eq!((*vnodes, fills.len()), (128, 1), "{owner}: {colours:?}");
    }

    // Requests through node 1 show up in its request table, counted by
    // the same counters as /metrics.
    for k in 0..7 {
        let path = format!("/kv/console-{k}");
        c.request(Method::PUT, 1, &path, &[], Some(b"v".to_vec()))
            .await
            .expect(204);
    }
    let puts = "Number(document.querySelector('#requests-body tr[data-op=\"http put\"] .total')?.textContent)";
    eventually(LIMIT, "the console counts 7 HTTP puts", async || {
        let shown = browser.eval(puts).await?;
        (shown == 7).then_some(()).ok_or(format!("{shown}"))
    })
    .await;

    // Who suspects whom: with the link between n2 and n3 cut, each
    // suspects the other, and node 1 (hearing from both) sees each
    // suspected by one member — short of the two "down" needs.
    c.link_one_way(2, 3, "cut").await;
    let cut = [
        ["n1", "up", "—"],
        ["n2", "suspect", "n3"],
        ["n3", "suspect", "n2"],
    ];
    shows(&mut browser, "n2 and n3 suspect each other", cut).await;

    // n3 dies for good: node 1 suspects it too, which makes two, and
    // n3's own suspicion of n2 no longer counts.
    c.kill(3);
    let down = [
        ["n1", "up", "—"],
        ["n2", "up", "—"],
        ["n3", "down", "n1, n2"],
    ];
    shows(&mut browser, "n3 is down, suspected by n1 and n2", down).await;
    let faded = "document.querySelectorAll('#ring path.vnode.faded[data-owner=\"n3\"]').length";
    assert_eq!(
        number(&mut browser, faded).await,
        Ok(128),
        "n3's vnodes fade"
    );

    let png = browser.screenshot().await;
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console.png");
    std::fs::write(&path, &png).expect("write the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 10_000,
        "a {} byte screenshot is blank",
        png.len()
    );
    eprintln!("console screenshot: {}", path.display());
}

/// A node that needs a token for its data: the page asks for one, keeps
/// it in the tab's sessionStorage, and then shows the cluster.
#[tokio::test]
async fn the_console_asks_for_a_token_when_the_node_needs_one() {
    let users = Users::new().await;
    let c = Cluster::start_with_token(3, &users.toml(None), &users.admin).await;
    let mut browser = Browser::start().await;
    browser.open(&c.url(1, "/ui")).await;

    let form_shown = "!document.getElementById('token-form').hidden";
    let reason = "document.getElementById('token-reason').textContent";
    eventually(LIMIT, "the page asks for a token", async || {
        let shown = browser.eval(form_shown).await?;
        (shown == true).then_some(()).ok_or(format!("{shown}"))
    })
    .await;
    let said = browser.eval(reason).await.expect("the reason");
    assert!(said.as_str().unwrap_or("").contains("read role"), "{said}");
    assert_eq!(
        members(&mut browser).await,
        Ok(Vec::new()),
        "nothing shown yet"
    );

    let submit = format!(
        "document.getElementById('token').value = {:?}; \
         document.getElementById('token-form').requestSubmit(); true",
        users.reader
    );
    browser.eval(&submit).await.expect("submit the token");
    let up = [["n1", "up", "—"], ["n2", "up", "—"], ["n3", "up", "—"]];
    shows(
        &mut browser,
        "the console shows the members with the token",
        up,
    )
    .await;
    let kept = browser.eval("sessionStorage.getItem('ringkv-token')").await;
    assert_eq!(kept, Ok(serde_json::json!(users.reader)));
    assert_eq!(browser.eval(form_shown).await, Ok(serde_json::json!(false)));
}
