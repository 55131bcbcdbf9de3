//! Client authentication end to end: real nodes with `[auth]`, users made
//! with `ringkv user add`, and every way in — HTTP (Bearer and Basic), the
//! Redis protocol (a raw exchange, and redis-cli when it is installed), the
//! CLI and the client library. A refused request changes nothing.

mod common;

use common::redis::{bulk, ok, Redis, Reply};
use common::users::Users;
use common::{http_client, key_path, run_cli, send, Cluster, Resp};
use reqwest::Method;
use ringkv_client::Client;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

const CLI_LIMIT: Duration = Duration::from_secs(30);

/// `method path` on node `i` with `headers` (no credential unless given).
async fn call(c: &Cluster, i: usize, method: Method, path: &str, headers: &[(&str, &str)]) -> Resp {
    let body = matches!(method, Method::PUT).then(|| b"v".to_vec());
    send(&http_client(), method, &c.url(i, path), headers, body)
        .await
        .expect("node answers")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A refusal: `status`, one sentence containing `says`.
#[track_caller]
fn assert_refused(resp: &Resp, status: u16, says: &str) {
    let text = resp.text();
    assert_eq!(resp.status, status, "{text}");
    assert_eq!(text.trim().lines().count(), 1, "one sentence: {text:?}");
    assert!(text.contains(says), "{says:?} not in {text:?}");
    if status == 401 {
        let challenge = resp.headers.get("www-authenticate").expect("a challenge");
        assert!(challenge.to_str().unwrap().starts_with("Bearer"));
    }
}

#[tokio::test]
async fn without_a_credential_only_health_is_served_and_leave_changes_nothing() {
    let users = Users::new().await;
    let c = Cluster::start_with_token(2, &users.toml(None), &users.admin).await;
    let leave = call(&c, 1, Method::POST, "/admin/leave", &[]).await;
    assert_refused(&leave, 401, "needs the admin role");
    let bad = bearer("rk_not-a-token");
    let leave = call(
        &c,
        1,
        Method::POST,
        "/admin/leave",
        &[("authorization", &bad)],
    )
    .await;
    assert_refused(&leave, 401, "invalid credential");
    for (method, path) in [
        (Method::PUT, "/kv/k"),
        (Method::GET, "/kv/k"),
        (Method::GET, "/status"),
    ] {
        let resp = call(&c, 1, method.clone(), path, &[]).await;
        assert_refused(&resp, 401, "send a token as Authorization: Bearer TOKEN");
    }
    let live = call(&c, 1, Method::GET, "/health/live", &[]).await;
    assert_eq!((live.status, live.text().trim()), (200, "ok"));
    // Had the leave gone through, n1 would be leaving by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 1..=2 {
        assert_eq!(c.member_statuses(i).await["n1"], "up", "n{i}'s view");
    }
    assert_eq!(
        c.get(1, "k").await.status,
        404,
        "the refused PUT wrote nothing"
    );
}

#[tokio::test]
async fn each_role_may_do_its_own_and_no_more() {
    let users = Users::new().await;
    let c = Cluster::start_with_token(2, &users.toml(None), &users.admin).await;
    let (reader, writer) = (bearer(&users.reader), bearer(&users.writer));
    let put = call(&c, 1, Method::PUT, "/kv/k", &[("authorization", &reader)]).await;
    assert_refused(&put, 403, "user r lacks the write role");
    assert_eq!(c.get(1, "k").await.status, 404);
    let put = call(&c, 1, Method::PUT, "/kv/k", &[("authorization", &writer)]).await;
    assert_eq!(put.status, 204, "{}", put.text());
    let get = call(&c, 2, Method::GET, "/kv/k", &[("authorization", &reader)]).await;
    assert_eq!((get.status, get.text()), (200, "v".to_string()));
    for path in ["/admin/leave", "/admin/repair"] {
        let resp = call(&c, 1, Method::POST, path, &[("authorization", &writer)]).await;
        assert_refused(&resp, 403, "user w lacks the admin role");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.member_statuses(2).await["n1"], "up");
    let delete = call(
        &c,
        1,
        Method::DELETE,
        "/kv/k",
        &[("authorization", &reader)],
    )
    .await;
    assert_refused(&delete, 403, "lacks the write role");
    assert_eq!(
        c.get(1, "k").await.status,
        200,
        "the refused DELETE deleted nothing"
    );
}

#[tokio::test]
async fn basic_auth_needs_the_token_and_its_user_name() {
    let users = Users::new().await;
    let c = Cluster::start_with_token(1, &users.toml(None), &users.admin).await;
    let basic = |user: &str, token: &str| {
        use base64::Engine;
        let pair = format!("{user}:{token}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    let path = format!("/admin/replica/{}", "k");
    let right = basic("admin", &users.admin);
    let resp = call(&c, 1, Method::GET, &path, &[("authorization", &right)]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let wrong_user = basic("r", &users.admin);
    let resp = call(&c, 1, Method::GET, &path, &[("authorization", &wrong_user)]).await;
    assert_refused(&resp, 401, "invalid credential");
    let garbage = call(
        &c,
        1,
        Method::GET,
        "/status",
        &[("authorization", "Basic !!")],
    )
    .await;
    assert_refused(&garbage, 401, "invalid Basic credential");
    let scheme = call(
        &c,
        1,
        Method::GET,
        "/status",
        &[("authorization", "Digest x")],
    )
    .await;
    assert_refused(&scheme, 401, "unsupported Authorization scheme");
    // A token sent without its scheme is refused and never echoed.
    let bare = call(
        &c,
        1,
        Method::GET,
        "/status",
        &[("authorization", "rk_SECRETTOKENVALUE")],
    )
    .await;
    assert_refused(&bare, 401, "unsupported Authorization scheme");
    assert!(!bare.text().contains("SECRETTOKENVALUE"), "{}", bare.text());
}

#[tokio::test]
async fn anonymous_read_reads_but_never_writes_or_administers() {
    let users = Users::new().await;
    let c = Cluster::start_with_token(1, &users.toml(Some("read")), &users.admin).await;
    c.put(1, "k", "v").await.expect(204);
    let get = call(&c, 1, Method::GET, &key_path("k"), &[]).await;
    assert_eq!(get.status, 200, "{}", get.text());
    assert_eq!(call(&c, 1, Method::GET, "/status", &[]).await.status, 200);
    let put = call(&c, 1, Method::PUT, "/kv/k", &[]).await;
    assert_refused(&put, 401, "needs the write role");
    let leave = call(&c, 1, Method::POST, "/admin/leave", &[]).await;
    assert_refused(&leave, 401, "needs the admin role");
}

#[tokio::test]
async fn redis_clients_authenticate_before_their_commands_run() {
    let users = Users::new().await;
    let c = Cluster::start_with_token(1, &users.toml(None), &users.admin).await;
    let mut redis = Redis::connect(c.resp_addr(1));
    let noauth = Reply::Error("NOAUTH Authentication required.".into());
    assert_eq!(redis.call(&["SET", "k", "v"]), noauth);
    assert_eq!(redis.call(&["GET", "k"]), noauth);
    assert_eq!(redis.call(&["PING"]), Reply::Simple("PONG".into()));
    let wrongpass =
        Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into());
    assert_eq!(redis.call(&["AUTH", "rk_wrong"]), wrongpass);
    assert_eq!(redis.call(&["AUTH", "admin", &users.reader]), wrongpass);
    assert_eq!(redis.call(&["AUTH", "r", &users.reader]), ok());
    let noperm = "NOPERM User r has no permissions to run the 'set' command";
    assert_eq!(redis.call(&["SET", "k", "v"]), Reply::Error(noperm.into()));
    // Every type's writes, not only strings' (a read token could HSET,
    // LPUSH and ZADD once).
    for write in [
        &["HSET", "h", "f", "v"][..],
        &["LPUSH", "l", "x"],
        &["ZADD", "z", "1", "m"],
        &["SPOP", "s"],
        &["HINCRBY", "h", "n", "1"],
    ] {
        let refused = redis.call(write);
        let name = write[0].to_lowercase();
        let noperm = format!("NOPERM User r has no permissions to run the '{name}' command");
        assert_eq!(refused, Reply::Error(noperm), "{write:?}");
    }
    assert_eq!(redis.call(&["AUTH", &users.writer]), ok());
    assert_eq!(redis.call(&["SET", "k", "v"]), ok());
    assert_eq!(redis.call(&["GET", "k"]), bulk("v"));
    redis_cli_agrees(&c, &users);
}

/// The same with the real redis-cli: `--user/--pass` and `-a`.
fn redis_cli_agrees(c: &Cluster, users: &Users) {
    let port = c.resp_addr(1).port().to_string();
    let run = |args: &[&str]| -> Output {
        let mut all = vec!["-p", &port, "--no-auth-warning"];
        all.extend_from_slice(args);
        std::process::Command::new("redis-cli")
            .args(&all)
            .output()
            .expect("redis-cli runs")
    };
    if std::process::Command::new("redis-cli")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "redis-cli is not installed (scripts/test installs redis-tools): skipped its part"
        );
        return;
    }
    let text = |out: Output| String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(text(run(&["GET", "k"])), "NOAUTH Authentication required.");
    let set = run(&["--user", "w", "--pass", &users.writer, "SET", "k", "cli"]);
    assert_eq!(text(set), "OK");
    assert_eq!(text(run(&["-a", &users.reader, "GET", "k"])), "cli");
    let wrong = run(&["-a", "rk_wrong", "GET", "k"]);
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("WRONGPASS"), "{stderr}");
}

/// `ringkv ARGS` with `env`, whatever its outcome.
async fn ringkv(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(common::ringkv_bin());
    command
        .args(args)
        .env_remove("RINGKV_TOKEN")
        .env("NO_PROXY", "127.0.0.1");
    command.envs(env.iter().copied()).kill_on_drop(true);
    tokio::time::timeout(CLI_LIMIT, command.output())
        .await
        .expect("ringkv finishes")
        .expect("ringkv runs")
}

#[tokio::test]
async fn the_cli_and_the_client_library_send_the_token() {
    let users = Users::new().await;
    let c = Cluster::start_with_token(2, &users.toml(None), &users.admin).await;
    let node = c.http_addr(1).to_string();
    let put = ringkv(
        &["put", "k", "v", "--node", &node, "--token", &users.writer],
        &[],
    )
    .await;
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let token_file = users.path.with_file_name("reader.token");
    std::fs::write(&token_file, format!("{}\n", users.reader)).unwrap();
    let file = token_file.to_str().unwrap();
    let by_file = ringkv(&["get", "k", "--node", &node, "--token-file", file], &[]).await;
    let by_env = ringkv(
        &["get", "k", "--node", &node],
        &[("RINGKV_TOKEN", &users.reader)],
    )
    .await;
    for got in [by_file, by_env] {
        assert_eq!(String::from_utf8_lossy(&got.stdout), "v\n", "{got:?}");
    }
    let denied = ringkv(
        &["put", "k", "x", "--node", &node, "--token", &users.reader],
        &[],
    )
    .await;
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        !denied.status.success() && stderr.contains("403"),
        "{stderr}"
    );
    let none = ringkv(&["status", "--node", &node], &[]).await;
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(!none.status.success() && stderr.contains("401"), "{stderr}");

    let reader = Client::builder()
        .token(&users.reader)
        .connect([&node])
        .await
        .unwrap();
    assert_eq!(reader.get("k").await.unwrap().siblings[0].value, b"v");
    let refused = reader.put("k", "x", &Default::default()).await.unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    let anonymous = Client::connect([&node]).await.err().expect("refused");
    assert_eq!(anonymous.status(), Some(401), "{anonymous}");
}

/// `ringkv user list` shows names and roles, never hashes or tokens.
#[tokio::test]
async fn user_list_shows_names_and_roles_only() {
    let users = Users::new().await;
    let file = users.path.to_str().unwrap();
    let listed = run_cli(&["user", "list", "--users-file", file], CLI_LIMIT).await;
    assert_eq!(listed, "admin\tadmin\nw\twrite\nr\tread\n");
    let again = ringkv(
        &["user", "add", "w", "--role", "read", "--users-file", file],
        &[],
    )
    .await;
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && stderr.contains("already exists"),
        "{stderr}"
    );
    assert!(Path::new(file).exists());
}

/// A user added to or removed from the file of running nodes is let in or
/// shut out within seconds, without a restart.
#[tokio::test]
async fn running_nodes_pick_up_added_and_removed_users() {
    let users = Users::new().await;
    let c = Cluster::start_with_token(1, &users.toml(None), &users.admin).await;
    let file = users.path.to_str().unwrap();
    let args = [
        "user",
        "add",
        "late",
        "--role",
        "read",
        "--users-file",
        file,
    ];
    let late = bearer(run_cli(&args, CLI_LIMIT).await.trim());
    let status = |token: String| {
        let c = &c;
        async move {
            let resp = call(c, 1, Method::GET, "/status", &[("authorization", &token)]).await;
            Ok::<u16, String>(resp.status)
        }
    };
    let wait_for = |token: String, want: u16| async move {
        common::eventually(
            Duration::from_secs(10),
            "the users file is re-read",
            async || match status(token.clone()).await? {
                got if got == want => Ok(()),
                got => Err(format!("status {got}")),
            },
        )
        .await
    };
    wait_for(late.clone(), 200).await;
    run_cli(&["user", "remove", "late", "--users-file", file], CLI_LIMIT).await;
    wait_for(late, 401).await;
    assert_eq!(status(bearer(&users.reader)).await, Ok(200));
}
