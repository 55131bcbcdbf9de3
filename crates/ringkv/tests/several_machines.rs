//! Several machines (issue 14, item 9): every node is a real process in
//! its own network namespace (`common::netns`), binds the wildcard address
//! (`[bind]`, as in a container or behind NAT) and advertises its own
//! namespace's address in `[[nodes]]`. The last node joins through the
//! first one's advertised address, as a new machine does. The test process,
//! in the root namespace outside all of them, is the client: what the
//! members advertise is all it has to reach them by. Once with
//! `insecure = true`, once secure as the README sets machines up: inter-node
//! TLS with certificates made by `ringkv cert` (they name node ids, not
//! hosts) and a bearer token from `ringkv user add`.
//!
//! Needs root, `ip` and `iptables` (`scripts/test` installs them); without
//! them the test fails with one sentence saying so.

mod common;

use common::netns::{Hosts, NsCluster, Setup, HTTP_PORT, PEER_PORT};
use common::{eventually, ringkv_bin, run_cli};
use ringkv_client::{Client, Context};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const NODES: usize = 3;
/// n3 joins through n1; n1 and n2 start from a static member list.
const JOINERS: usize = 1;
/// Bound on n3's join completing and every node's view agreeing (a join
/// streams every range: N = 3 on three nodes).
const JOIN_LIMIT: Duration = Duration::from_secs(60);
/// Bound on any one request.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// Keys written through each node.
const KEYS_PER_NODE: usize = 10;

/// Every node binds the wildcard on the ports it advertises.
fn wildcard_bind() -> String {
    format!("[bind]\naddr = \"0.0.0.0:{PEER_PORT}\"\nhttp = \"0.0.0.0:{HTTP_PORT}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_binding_the_wildcard_are_reached_at_the_addresses_they_advertise() {
    let setup = Setup {
        joiners: JOINERS,
        extra_toml: &wildcard_bind(),
        token: None,
    };
    let cluster = NsCluster::start_on(Hosts::create(NODES), Path::new(ringkv_bin()), &setup).await;
    check_several_machines(&cluster, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_nodes_on_several_machines_need_no_host_names_in_their_certificates() {
    let hosts = Hosts::create(NODES);
    let credentials = tempfile::tempdir().expect("tempdir");
    let (extra_toml, token) = credentials_per_machine(credentials.path()).await;
    let setup = Setup {
        joiners: JOINERS,
        extra_toml: &extra_toml,
        token: Some(&token),
    };
    let cluster = NsCluster::start_on(hosts, Path::new(ringkv_bin()), &setup).await;
    check_several_machines(&cluster, Some(&token)).await;
}

/// A CA, a certificate per node made by `ringkv cert` with no `--host` (so
/// nothing in it names an address), an admin from `ringkv user add`:
/// the config sections that use them (with the wildcard bind), and the
/// admin's token.
async fn credentials_per_machine(dir: &Path) -> (String, String) {
    let certs = dir.join("certs");
    let certs_arg = certs.to_str().expect("utf-8 temp path");
    let create_ca = [
        "cert",
        "create-ca",
        "--certs-dir",
        certs_arg,
        "--cluster",
        "netns",
    ];
    run_cli(&create_ca, REQUEST_LIMIT).await;
    for i in 1..=NODES {
        let id = format!("n{i}");
        let create_node = ["cert", "create-node", "--certs-dir", certs_arg, "--id", &id];
        run_cli(&create_node, REQUEST_LIMIT).await;
    }
    let users = dir.join("users.toml");
    let users_arg = users.to_str().expect("utf-8 temp path");
    let add = [
        "user",
        "add",
        "admin",
        "--role",
        "admin",
        "--users-file",
        users_arg,
    ];
    let token = run_cli(&add, REQUEST_LIMIT).await.trim().to_string();
    let extra_toml = format!(
        "{}
[tls]
ca = {:?}
cert = {:?}
key = {:?}

[auth]
users = {users_arg:?}
",
        wildcard_bind(),
        certs.join("ca.pem"),
        certs.join("{id}.pem"),
        certs.join("{id}.key"),
    );
    (extra_toml, token)
}

/// What a cluster on several machines must do, seen from outside them;
/// `token` is sent by the client library and `ringkv status`.
async fn check_several_machines(cluster: &NsCluster, token: Option<&str>) {
    eventually(
        JOIN_LIMIT,
        "every node sees every member up at its advertised addresses",
        async || members_as_advertised(cluster).await,
    )
    .await;
    listed_http_answers_from_outside(cluster).await;
    the_wildcard_is_bound(cluster);
    writes_through_each_node_read_through_every_node(cluster).await;
    client_library_reads_its_writes(cluster, token).await;
    status_command_shows_the_advertised_addresses(cluster, token).await;
}

/// What every member should be listed with: id → (addr, http, status).
fn advertised(cluster: &NsCluster) -> BTreeMap<String, [String; 3]> {
    (1..=NODES)
        .map(|j| {
            let ip = cluster.hosts.addr(j);
            let entry = [
                format!("{ip}:{PEER_PORT}"),
                format!("{ip}:{HTTP_PORT}"),
                "up".to_string(),
            ];
            (format!("n{j}"), entry)
        })
        .collect()
}

/// Ok when every node's `/status` lists exactly the advertised members.
async fn members_as_advertised(cluster: &NsCluster) -> Result<(), String> {
    let expected = advertised(cluster);
    for i in 1..=NODES {
        let status = cluster.status(i).await;
        let members = status["members"].as_array().cloned().unwrap_or_default();
        let field = |m: &serde_json::Value, name: &str| m[name].as_str().unwrap_or("").to_string();
        let seen: BTreeMap<String, [String; 3]> = members
            .iter()
            .map(|m| {
                let entry = [field(m, "addr"), field(m, "http"), field(m, "status")];
                (field(m, "id"), entry)
            })
            .collect();
        if seen != expected {
            return Err(format!("n{i} lists {seen:?}, expected {expected:?}"));
        }
    }
    Ok(())
}

/// Each `http` address n1's `/status` lists (what clients learn), dialled
/// from the root namespace, answers.
async fn listed_http_answers_from_outside(cluster: &NsCluster) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_LIMIT)
        .build()
        .expect("http client");
    let status = cluster.status(1).await;
    let members = status["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), NODES, "{status}");
    for member in &members {
        let addr = member["http"].as_str().expect("http address");
        let url = format!("http://{addr}/health/live");
        let answer = http.get(&url).send().await;
        assert!(
            answer.as_ref().is_ok_and(|r| r.status().is_success()),
            "{url} from outside the namespaces: {answer:?}"
        );
    }
}

/// Inside each node's namespace, its loopback address reaches both ports:
/// the node bound the wildcard, not only the address it advertises.
fn the_wildcard_is_bound(cluster: &NsCluster) {
    for i in 1..=NODES {
        for port in [PEER_PORT, HTTP_PORT] {
            let connect = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
            let out = cluster
                .hosts
                .command(i, "bash")
                .args(["-c", &connect])
                .output()
                .expect("run bash in the namespace");
            assert!(
                out.status.success(),
                "n{i} does not listen on 127.0.0.1:{port} in its namespace: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}

async fn writes_through_each_node_read_through_every_node(cluster: &NsCluster) {
    for i in 1..=NODES {
        for k in 0..KEYS_PER_NODE {
            let (key, value) = (format!("via-n{i}-{k}"), format!("value {i} {k}"));
            let put = cluster
                .put(i, &key, value.as_bytes(), None, REQUEST_LIMIT)
                .await;
            assert!(put.ok(), "PUT {key} through n{i}: {}", put.describe());
            for j in 1..=NODES {
                let get = cluster.get(j, &key, None, REQUEST_LIMIT).await;
                assert!(
                    get.status == Some(200) && get.body == value.as_bytes(),
                    "GET {key} through n{j} after a PUT through n{i}: {}",
                    get.describe()
                );
            }
        }
    }
}

/// The client library learns the members' advertised HTTP addresses from
/// one seed and routes each key to its coordinator there.
async fn client_library_reads_its_writes(cluster: &NsCluster, token: Option<&str>) {
    let seed = format!("{}:{HTTP_PORT}", cluster.hosts.addr(1));
    let mut builder = Client::builder();
    if let Some(token) = token {
        builder = builder.token(token);
    }
    let client = builder.connect([seed]).await.expect("client connects");
    for k in 0..NODES * KEYS_PER_NODE {
        let (key, value) = (format!("client-{k}"), format!("client value {k}"));
        client
            .put(&key, value.clone(), &Context::none())
            .await
            .unwrap_or_else(|e| panic!("client PUT {key}: {e}"));
        let read = client
            .get(&key)
            .await
            .unwrap_or_else(|e| panic!("client GET {key}: {e}"));
        assert_eq!(read.value(), Some(value.as_bytes()), "client GET {key}");
    }
}

/// `ringkv status`, run outside the namespaces, lists each member at its
/// advertised HTTP address and never at a wildcard.
async fn status_command_shows_the_advertised_addresses(cluster: &NsCluster, token: Option<&str>) {
    let node = format!("{}:{HTTP_PORT}", cluster.hosts.addr(2));
    let mut args = vec!["status", "--node", &node];
    if let Some(token) = token {
        args.extend(["--token", token]);
    }
    let table = run_cli(&args, REQUEST_LIMIT).await;
    for [_, http, _] in advertised(cluster).values() {
        assert!(table.contains(http.as_str()), "{http} not in:\n{table}");
    }
    assert!(!table.contains("0.0.0.0"), "a wildcard in:\n{table}");
}
