//! What real Redis clients send, against real nodes: inline commands as
//! typed into telnet, `redis-cli --pipe` (empty lines between commands),
//! redis-benchmark's whole default test list, the `HELLO` handshake and
//! RESP3, `CLIENT`/`INFO`/`DBSIZE`, `MULTI`/`EXEC`, and redis-py 8 with
//! its default settings. The real tools are used where users would use
//! them; missing, they fail the test as root (scripts/test installs them)
//! and skip it otherwise.

mod common;

use common::redis::{bulk, ok, request, tool, Redis, Reply};
use common::{eventually, Cluster};
use std::process::Output;
use std::time::Duration;

/// Bound on one run of a Redis tool.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

fn pong() -> Reply {
    Reply::Simple("PONG".into())
}

fn error_text(reply: Reply) -> String {
    match reply {
        Reply::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// `program args…` with `stdin`, within [`TOOL_TIMEOUT`].
async fn run(program: &str, args: &[&str], stdin: Option<&std::path::Path>) -> Output {
    let mut command = tokio::process::Command::new(program);
    command.args(args).kill_on_drop(true);
    if let Some(path) = stdin {
        command.stdin(std::fs::File::open(path).expect("stdin file"));
    }
    tokio::time::timeout(TOOL_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} took over {TOOL_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

#[tokio::test]
async fn inline_ping_answers_pong_and_keeps_the_connection() {
    let c = Cluster::start(3).await;
    let mut telnet = Redis::connect(c.resp_addr(1));
    telnet.send(b"PING\r\n");
    assert_eq!(telnet.reply(), pong());
    telnet.send(b"SET greeting \"hello world\"\r\n");
    assert_eq!(telnet.reply(), ok());
    telnet.send(b"get 'greeting'\n");
    assert_eq!(telnet.reply(), bulk("hello world"));
    // Inline and array requests mix on one connection, as in Redis.
    telnet.send(&[&request(&["EXISTS", "greeting"])[..], b"ECHO \"a\\tb\"\r\n"].concat());
    assert_eq!(telnet.reply(), Reply::Int(1));
    assert_eq!(telnet.reply(), bulk("a\tb"));
    assert!(error_text(telnet.call(&["NOPE"])).starts_with("ERR unknown command 'NOPE'"));
    assert_eq!(
        telnet.call(&["PING"]),
        pong(),
        "an unknown command keeps the connection"
    );

    // A line over 64 KiB: one clear error, then the connection closes.
    let mut long = Redis::connect(c.resp_addr(2));
    long.send(&vec![b'a'; 64 * 1024]);
    let refused = error_text(long.reply());
    assert!(
        refused.starts_with("ERR Protocol error: too big inline request"),
        "{refused}"
    );
    assert!(long.is_closed());
    // So does an HTTP request (what a browser would send).
    let mut browser = Redis::connect(c.resp_addr(2));
    browser.send(b"POST / HTTP/1.1\r\nHost: localhost\r\n\r\nSET k v\r\n");
    assert!(browser.is_closed(), "a POST is closed unanswered");
    assert_eq!(
        telnet.call(&["GET", "k"]),
        Reply::Bulk(None),
        "and runs nothing"
    );
}

#[tokio::test]
async fn empty_lines_between_commands_are_ignored_so_redis_cli_pipe_succeeds() {
    let c = Cluster::start(3).await;
    let mut redis = Redis::connect(c.resp_addr(1));
    redis.send(b"*1\r\n$4\r\nPING\r\n\r\n\r\n*1\r\n$4\r\nPING\r\n");
    assert_eq!(redis.reply(), pong());
    assert_eq!(redis.reply(), pong());

    if !tool("redis-cli", &["--version"], "apt-get install redis-tools") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mass.resp");
    let sets: Vec<u8> = (1..=100)
        .flat_map(|i| request(&["SET", &format!("mass:{i}"), &format!("value-{i}")]))
        .collect();
    std::fs::write(&input, sets).unwrap();
    let port = c.resp_addr(1).port().to_string();
    let out = run("redis-cli", &["-p", &port, "--pipe"], Some(&input)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "redis-cli --pipe: {stdout}");
    assert!(stdout.contains("errors: 0, replies: 100"), "{stdout}");
    assert_eq!(redis.call(&["GET", "mass:100"]), bulk("value-100"));
}

/// The lines of redis-benchmark's `-q` output that report a finished test.
fn finished_tests(out: &Output) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    stdout
        .lines()
        .filter(|l| l.contains("requests per second"))
        .filter_map(|l| l.split(':').next().map(String::from))
        .collect()
}

/// redis-benchmark 7 exits at the first error reply it gets ("to avoid
/// false results"), so its default list runs to the end only when every
/// command in it is served: strings, counters, lists (`LPUSH` … `LRANGE`,
/// 600 elements on one key), sets with `SPOP`, hashes, sorted sets with
/// `ZPOPMIN`, and `MSET`, over inline and array requests.
#[tokio::test]
async fn redis_benchmark_runs_its_whole_default_test_list() {
    if !tool(
        "redis-benchmark",
        &["--version"],
        "apt-get install redis-tools",
    ) {
        return;
    }
    let c = Cluster::start(3).await;
    let port = c.resp_addr(1).port().to_string();
    let out = run("redis-benchmark", &["-p", &port, "-n", "600", "-q"], None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = [
        "PING_INLINE",
        "PING_MBULK",
        "SET",
        "GET",
        "INCR",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "SADD",
        "HSET",
        "SPOP",
        "ZADD",
        "ZPOPMIN",
        "LPUSH (needed to benchmark LRANGE)",
        "LRANGE_100 (first 100 elements)",
        "LRANGE_300 (first 300 elements)",
        "LRANGE_500 (first 500 elements)",
        "LRANGE_600 (first 600 elements)",
        "MSET (10 keys)",
    ];
    assert_eq!(finished_tests(&out), expected);
    let mut redis = Redis::connect(c.resp_addr(2));
    assert_eq!(redis.call(&["LLEN", "mylist"]), Reply::Int(600));
}

/// Interactive redis-cli asks `COMMAND DOCS` at start for its help and
/// hints; a reply it cannot parse crashes it (redis-cli 7.0 follows a
/// `block` argument's sub-arguments without checking they exist). Run in
/// a pseudo-terminal (util-linux `script`), it shows the hint for `GET`
/// and exits cleanly on `quit`.
#[tokio::test]
async fn interactive_redis_cli_starts_with_hints_from_command_docs() {
    if !tool("redis-cli", &["--version"], "apt-get install redis-tools")
        || !tool("script", &["--version"], "apt-get install bsdutils")
    {
        return;
    }
    let c = Cluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let typescript = dir.path().join("typescript");
    // A window size, else linenoise asks the terminal where its cursor is.
    let cli = format!(
        "stty cols 120 rows 40; redis-cli -p {}",
        c.resp_addr(1).port()
    );
    let mut child = tokio::process::Command::new("script")
        .args(["-q", "-f", "-e", "-c", &cli])
        .arg(&typescript)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("script runs");
    let mut stdin = child.stdin.take().unwrap();
    use tokio::io::AsyncWriteExt;
    for typed in ["get ", "\r", "help mset\r", "quit\r"] {
        tokio::time::sleep(Duration::from_millis(700)).await;
        if stdin.write_all(typed.as_bytes()).await.is_err() {
            break; // redis-cli is gone: its exit status tells why
        }
    }
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    let shown = without_escapes(&String::from_utf8_lossy(
        &std::fs::read(&typescript).unwrap(),
    ));
    let Ok(status) = status else {
        panic!("redis-cli did not exit on quit:\n{shown}");
    };
    let status = status.unwrap();
    assert!(status.success(), "redis-cli exited with {status}:\n{shown}");
    assert!(shown.contains("get key"), "no GET hint:\n{shown}");
    assert!(
        shown.contains("MSET key value [key value ...]"),
        "no MSET help:\n{shown}"
    );
}

/// `text` without terminal escape sequences (`ESC [ … letter`).
fn without_escapes(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of `name` in a `HELLO` reply, a RESP2 flat array or a map.
fn field(reply: &Reply, name: &str) -> Reply {
    let pairs: Vec<(&Reply, &Reply)> = match reply {
        Reply::Array(flat) => flat.chunks(2).map(|kv| (&kv[0], &kv[1])).collect(),
        Reply::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
        other => panic!("not a server map: {other:?}"),
    };
    let found = pairs.into_iter().find(|(k, _)| **k == bulk(name));
    let (_, value) = found.unwrap_or_else(|| panic!("no {name} in {reply:?}"));
    value.clone()
}

#[tokio::test]
async fn hello_answers_the_server_map_and_hello_3_switches_to_resp3() {
    let c = Cluster::start(3).await;
    let mut redis = Redis::connect(c.resp_addr(1));
    for hello in [&["HELLO"][..], &["HELLO", "2"]] {
        let map = redis.call(hello);
        assert!(matches!(map, Reply::Array(_)), "{hello:?}: {map:?}");
        assert_eq!(field(&map, "proto"), Reply::Int(2));
        assert_eq!(field(&map, "mode"), bulk("standalone"));
        assert_eq!(field(&map, "role"), bulk("master"));
        assert_eq!(field(&map, "modules"), Reply::Array(Vec::new()));
    }
    assert_eq!(
        error_text(redis.call(&["HELLO", "4"])),
        "NOPROTO unsupported protocol version"
    );
    assert_eq!(
        redis.call(&["GET", "missing"]),
        Reply::Bulk(None),
        "still RESP2"
    );

    let map = redis.call(&["HELLO", "3", "SETNAME", "resp3-test"]);
    assert!(matches!(map, Reply::Map(_)), "{map:?}");
    assert_eq!(field(&map, "proto"), Reply::Int(3));
    assert_eq!(field(&map, "id"), redis.call(&["CLIENT", "ID"]));
    assert_eq!(redis.call(&["GET", "missing"]), Reply::Null);
    assert_eq!(redis.call(&["SET", "k", "v"]), ok());
    let mget = redis.call(&["MGET", "k", "missing"]);
    assert_eq!(mget, Reply::Array(vec![bulk("v"), Reply::Null]));
    assert_eq!(redis.call(&["CLIENT", "GETNAME"]), bulk("resp3-test"));
    let config = redis.call(&["CONFIG", "GET", "appendonly"]);
    assert_eq!(config, Reply::Map(vec![(bulk("appendonly"), bulk("no"))]));
    assert!(matches!(redis.call(&["HELLO", "2"]), Reply::Array(_)));
    assert_eq!(
        redis.call(&["GET", "missing"]),
        Reply::Bulk(None),
        "RESP2 again"
    );

    if tool("redis-cli", &["--version"], "apt-get install redis-tools") {
        let port = c.resp_addr(2).port().to_string();
        let out = run("redis-cli", &["-3", "-p", &port, "HELLO", "3"], None).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.lines().any(|l| l == "proto 3"), "{stdout}");
    }
}

#[tokio::test]
async fn client_select_dbsize_and_info_sections_answer_as_redis_does() {
    let c = Cluster::start(3).await;
    let mut redis = Redis::connect(c.resp_addr(1));
    let mut other = Redis::connect(c.resp_addr(1));
    let Reply::Int(id) = redis.call(&["CLIENT", "ID"]) else {
        panic!("CLIENT ID is an integer");
    };
    assert_ne!(other.call(&["CLIENT", "ID"]), Reply::Int(id));
    assert_eq!(redis.call(&["CLIENT", "GETNAME"]), Reply::Bulk(None));
    assert_eq!(redis.call(&["CLIENT", "SETNAME", "worker-1"]), ok());
    assert_eq!(redis.call(&["CLIENT", "SETINFO", "LIB-NAME", "test"]), ok());
    assert_eq!(redis.call(&["CLIENT", "GETNAME"]), bulk("worker-1"));
    let Reply::Bulk(Some(info)) = redis.call(&["CLIENT", "INFO"]) else {
        panic!("CLIENT INFO is a bulk string");
    };
    let info = String::from_utf8(info).unwrap();
    assert!(info.starts_with(&format!("id={id} addr=")), "{info}");
    assert!(
        info.contains(" name=worker-1 ") && info.contains(" resp=2 lib-name=test "),
        "{info}"
    );
    assert_eq!(redis.call(&["SELECT", "0"]), ok());
    assert_eq!(
        error_text(redis.call(&["SELECT", "1"])),
        "ERR DB index is out of range"
    );

    for k in ["a", "b", "c"] {
        assert_eq!(redis.call(&["SET", k, "v"]), ok());
    }
    // With n = 3 on three nodes, every node stores every key.
    eventually(
        Duration::from_secs(10),
        "DBSIZE counts the keys",
        async || match Redis::connect(c.resp_addr(1)).call(&["DBSIZE"]) {
            Reply::Int(3) => Ok(()),
            other => Err(format!("DBSIZE {other:?}")),
        },
    )
    .await;
    let info = |redis: &mut Redis, args: &[&str]| match redis.call(args) {
        Reply::Bulk(Some(text)) => String::from_utf8(text).unwrap(),
        other => panic!("{args:?}: {other:?}"),
    };
    let all = info(&mut redis, &["INFO"]);
    for line in [
        "# Server",
        "# Clients",
        "connected_clients:",
        "# Keyspace",
        "db0:keys=3,",
        "# ringkv",
    ] {
        assert!(all.contains(line), "no {line:?} in INFO:\n{all}");
    }
    let headers = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with('#'))
            .map(String::from)
            .collect()
    };
    assert_eq!(
        headers(&info(&mut redis, &["INFO", "everything"])),
        headers(&all)
    );
    let clients = info(&mut redis, &["INFO", "Clients"]);
    assert!(
        clients.starts_with("# Clients") && !clients.contains("# Server"),
        "{clients}"
    );
    let two = info(&mut redis, &["INFO", "server", "keyspace"]);
    assert!(two.contains("# Server") && two.contains("# Keyspace") && !two.contains("# ringkv"));

    assert!(matches!(redis.call(&["COMMAND", "COUNT"]), Reply::Int(n) if n > 0));
    let Reply::Array(docs) = redis.call(&["COMMAND", "DOCS", "GET"]) else {
        panic!("COMMAND DOCS is a map (a flat array in RESP2)");
    };
    assert_eq!(docs.first(), Some(&bulk("get")));
}

#[tokio::test]
async fn multi_exec_applies_queued_commands_in_order_and_an_aborted_one_applies_none() {
    let c = Cluster::start(3).await;
    let mut redis = Redis::connect(c.resp_addr(1));
    let queued = || Reply::Simple("QUEUED".into());
    assert_eq!(redis.call(&["MULTI"]), ok());
    for args in [
        &["SET", "t:a", "1"][..],
        &["GET", "t:a"],
        &["DEL", "t:a"],
        &["GET", "t:a"],
    ] {
        assert_eq!(redis.call(args), queued(), "{args:?}");
    }
    let replies = vec![ok(), bulk("1"), Reply::Int(1), Reply::Bulk(None)];
    assert_eq!(redis.call(&["EXEC"]), Reply::Array(replies));

    assert_eq!(redis.call(&["MULTI"]), ok());
    assert_eq!(redis.call(&["SET", "t:b", "1"]), queued());
    let refused = error_text(redis.call(&["GET"]));
    assert!(
        refused.starts_with("ERR wrong number of arguments"),
        "{refused}"
    );
    let abort = error_text(redis.call(&["EXEC"]));
    assert_eq!(
        abort,
        "EXECABORT Transaction discarded because of previous errors."
    );
    let mut elsewhere = Redis::connect(c.resp_addr(2));
    assert_eq!(
        elsewhere.call(&["GET", "t:b"]),
        Reply::Bulk(None),
        "nothing applied"
    );

    assert_eq!(redis.call(&["MULTI"]), ok());
    assert_eq!(redis.call(&["SET", "t:c", "1"]), queued());
    assert_eq!(redis.call(&["DISCARD"]), ok());
    assert_eq!(
        elsewhere.call(&["GET", "t:c"]),
        Reply::Bulk(None),
        "discarded"
    );
    assert_eq!(error_text(redis.call(&["EXEC"])), "ERR EXEC without MULTI");
    let watch = error_text(redis.call(&["WATCH", "t:a"]));
    assert!(
        watch.contains("WATCH is not supported by ringkv"),
        "{watch}"
    );

    // The queue is bounded like a pipeline (resp_pipeline_commands, 1024).
    assert_eq!(redis.call(&["MULTI"]), ok());
    redis.send(&request(&["PING"]).repeat(1025));
    for _ in 0..1024 {
        assert_eq!(redis.reply(), queued());
    }
    let over = error_text(redis.reply());
    assert!(
        over.contains("a transaction holds at most 1024 commands"),
        "{over}"
    );
    assert!(error_text(redis.call(&["EXEC"])).starts_with("EXECABORT"));
    assert_eq!(redis.call(&["PING"]), pong());
}

/// redis-py 8 speaks RESP3 by default and opens with `HELLO 3` and
/// `CLIENT SETINFO`; its default `pipeline()` is a MULTI/EXEC transaction.
const REDIS_PY: &str = r#"
import sys, redis
r = redis.Redis(port=int(sys.argv[1]))
assert r.ping()
info = r.execute_command("CLIENT", "INFO")
info = info.decode() if isinstance(info, bytes) else info
assert "resp=3" in info, info
assert r.set("py:k", "v") is True
assert r.get("py:k") == b"v"
assert r.get("py:missing") is None
assert r.mget("py:k", "py:missing") == [b"v", None]
assert r.delete("py:k") == 1
assert r.exists("py:k") == 0
assert r.client_setname("py") is True
assert r.client_getname() in ("py", b"py")
assert r.info()["redis_mode"] == "standalone"
assert isinstance(r.dbsize(), int)
with r.pipeline() as p:
    p.set("py:a", "1").get("py:a").mget("py:a", "py:b")
    assert p.execute() == [True, b"1", [b"1", None]]
try:
    with r.pipeline() as p:
        p.watch("py:a")
    sys.exit("WATCH was accepted")
except redis.ResponseError as e:
    assert "not supported" in str(e), e
print("redis-py ok")
"#;

#[tokio::test]
async fn redis_py_connects_with_resp3_defaults_and_runs_transactions() {
    let check = "import redis, sys; sys.exit(int(redis.__version__.split('.')[0]) < 8)";
    if !tool("python3", &["-c", check], "pip3 install 'redis>=8'") {
        return;
    }
    let c = Cluster::start(3).await;
    let port = c.resp_addr(3).port().to_string();
    let out = run("python3", &["-c", REDIS_PY, &port], None).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("redis-py ok"),
        "{stdout}{stderr}"
    );
}
