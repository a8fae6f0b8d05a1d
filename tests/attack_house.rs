//! Adversarial tests for issue #14 ("a house without circles"): a hardened listener, readers
//! apart from the writer, retention. Each test attacks one promise. A doc comment that
//! describes a break tells what the test found when it was written (the attack round of
//! 2026-12-01); every one of those was fixed, and the test now guards the fix. Loopback only: the daemon runs in process against the simulator, as in
//! tests/listener.rs; the CLI runs as the real binary.

mod common;

use common::hooks::*;

use rusqlite::Connection;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Ids of the runs started by a webhook, oldest first.
fn run_ids(store: &Path) -> Vec<i64> {
    webhook_runs(store).into_iter().map(|r| r.0).collect()
}

/// Moves the remembered pushes of the store back by `hours`, as if received that long ago.
fn age_deliveries(store: &Path, hours: i64) {
    let n = db(store)
        .execute(
            &format!(
                "UPDATE hook_deliveries SET received_at =
                     strftime('%Y-%m-%dT%H:%M:%fZ', received_at, '-{hours} hours')"
            ),
            [],
        )
        .unwrap();
    assert!(n >= 1, "no delivery remembered");
}

/// Attacks "retention: webhook delivery ids … (configurable)" together with the replay
/// guard: an operator who keeps delivery ids for 7 days (`[store] retention =
/// { webhook_deliveries = "7d" }`) expects a captured push replayed two days later to start
/// nothing. The claim itself deletes every id older than the hard-coded 24 h
/// (`hooks::DELIVERY_MEMORY`, passed to `Store::claim_delivery`, which purges
/// `received_at < now - 24h` on every claim), so the setting is ignored and the replay of a
/// two-day-old push under a fresh delivery id starts a second run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_longer_webhook_deliveries_retention_keeps_a_two_day_old_push_a_duplicate() {
    let sim = sim(0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let scans = hook_scan(dir.path(), "gh", "github", GITHUB_SECRET);
    let (config, store) = write_config(
        &sim,
        dir.path(),
        "retention = { webhook_deliveries = \"7d\" }",
        "",
        &scans,
    );
    let mut d = start(&config).await;
    d.ready().await;
    let hook = d.url("/hooks/gh");
    let push = fixture("github_push.json");

    let r = post(&hook, &github_headers("push", "d-1", &push), push.clone()).await;
    assert_eq!(r.status, 202, "{}", r.json);
    let first = r.json["run_id"].as_i64().unwrap();
    finished_run(&store, first).await;
    age_deliveries(&store, 48);

    let r = post(
        &hook,
        &github_headers("push", "replayed-2", &push),
        push.clone(),
    )
    .await;
    let runs = run_ids(&store);
    d.stop().await;
    sim.shutdown().await;
    assert_eq!(
        (r.status, r.json["result"].as_str()),
        (200, Some("duplicate")),
        "a replay within the configured 7 days started something: {}",
        r.json
    );
    assert_eq!(runs, vec![first]);
}

/// Attacks "a replayed push with a changed or missing delivery header starts nothing" with
/// the default retention: GitHub's signature carries no timestamp, so once the delivery id is
/// forgotten (24 h) the same captured, correctly signed push replayed under a new delivery id
/// starts another run. (A gap of the design as specified: the guard remembers the push for
/// 24 h only, and nothing else — e.g. a run already done for that `after` commit — stops a
/// replay after that.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_push_replayed_after_25_hours_starts_nothing() {
    let (sim, _dir, d, store) = hook_daemon("gh", "github", GITHUB_SECRET, "", "").await;
    let hook = d.url("/hooks/gh");
    let push = fixture("github_push.json");

    let r = post(&hook, &github_headers("push", "d-1", &push), push.clone()).await;
    assert_eq!(r.status, 202, "{}", r.json);
    let first = r.json["run_id"].as_i64().unwrap();
    finished_run(&store, first).await;
    age_deliveries(&store, 25);

    let r = post(
        &hook,
        &github_headers("push", "replayed-2", &push),
        push.clone(),
    )
    .await;
    let runs = run_ids(&store);
    d.stop().await;
    sim.shutdown().await;
    assert_ne!(
        r.status, 202,
        "a 25-hour-old push replayed started a run: {}",
        r.json
    );
    assert_eq!(runs, vec![first]);
}

/// Attacks "the replay guard keyed on what the signature covers (for a push: repository,
/// ref and the `after` commit)" on GitLab with a plain secret token (`X-Gitlab-Token`), where
/// nothing signs the body: the guard keys on the SHA-256 of the raw body bytes
/// (`hooks::replay_key`), so the same push (same project, ref and `after`) re-sent with its
/// JSON re-indented and a new `Idempotency-Key` is not recognised and starts a second run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_push_resent_with_its_json_reformatted_starts_nothing() {
    let (sim, _dir, d, store) = hook_daemon("gl", "gitlab", GITLAB_SECRET, "", "").await;
    let hook = d.url("/hooks/gl");
    let push = fixture("gitlab_push.json");
    let headers = |key: &str| {
        vec![
            ("X-Gitlab-Event", "Push Hook".to_string()),
            ("X-Gitlab-Token", GITLAB_SECRET.to_string()),
            ("Idempotency-Key", key.to_string()),
        ]
    };

    let r = post(&hook, &headers("k-1"), push.clone()).await;
    assert_eq!(r.status, 202, "{}", r.json);
    let first = r.json["run_id"].as_i64().unwrap();
    finished_run(&store, first).await;

    // The same push: same project, ref, before and after; only the bytes differ.
    let same: Value = serde_json::from_str(&push).unwrap();
    let compact = serde_json::to_string(&same).unwrap();
    assert_ne!(compact, push);
    let r = post(&hook, &headers("k-2"), compact).await;
    let runs = run_ids(&store);
    d.stop().await;
    sim.shutdown().await;
    assert_eq!(
        (r.status, r.json["result"].as_str()),
        (200, Some("duplicate")),
        "the same push, re-serialised, started again: {}",
        r.json
    );
    assert_eq!(runs, vec![first]);
}

/// Attacks "a cap on concurrent connections … never crash the daemon" with a slowloris: as
/// many connections as the cap, each sending nothing at all, must not keep the listener
/// unusable past the header read timeout (10 s): a bounded time later `/healthz` answers
/// again, and the daemon is alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_filling_the_cap_are_dropped_and_healthz_answers_again() {
    let (sim, _dir, d, _store) =
        hook_daemon("gh", "github", GITHUB_SECRET, "", "max_connections = 2\n").await;
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(tokio::net::TcpStream::connect(d.addr).await.unwrap());
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let healthz = d.url("/healthz");
    let started = Instant::now();
    let mut answered = None;
    // Header read timeout (10 s) plus a generous margin.
    while started.elapsed() < Duration::from_secs(40) {
        if let Ok(r) = client.get(&healthz).send().await {
            answered = Some(r.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let alive = !d.task.is_finished();
    drop(silent);
    d.stop().await;
    sim.shutdown().await;
    assert!(alive, "the daemon ended");
    assert_eq!(
        answered,
        Some(200),
        "two silent connections held a listener capped at 2 for 40 s"
    );
}

/// Attacks the same cap with keep-alive: connections that each made one request and then
/// stay idle (as an HTTP client pool does) fill the cap; they must be let go after the idle
/// timeout, so a new client is served again within a bounded time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_filling_the_cap_are_let_go() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (sim, _dir, d, _store) =
        hook_daemon("gh", "github", GITHUB_SECRET, "", "max_connections = 2\n").await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut c = tokio::net::TcpStream::connect(d.addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(WAIT, c.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        idle.push(c);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let healthz = d.url("/healthz");
    let started = Instant::now();
    let mut answered = None;
    while started.elapsed() < Duration::from_secs(40) {
        if let Ok(r) = client.get(&healthz).send().await {
            answered = Some(r.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(idle);
    d.stop().await;
    sim.shutdown().await;
    assert_eq!(
        answered,
        Some(200),
        "two idle keep-alive connections held a listener capped at 2 for 40 s"
    );
}

/// Runs the scansync binary with `args`, waiting at most `limit`; `None` when it did not end.
fn run_bounded(args: &[&str], limit: Duration) -> Option<std::process::Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scansync"))
        .args(args)
        .env("SCANSYNC_CONFIG", "/nonexistent/scansync-attack.toml")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    None
}

/// A store with a few runs and findings, made by the library as the daemon makes it.
fn filled_store(dir: &Path) -> PathBuf {
    use scansync::store::{RunEnd, RunScope, Store};
    let path = dir.join("scansync.db");
    let mut store = Store::open(&path).unwrap();
    let scope = RunScope {
        scan: "shop".into(),
        instance: "ct".into(),
        vendor: "codethreat".into(),
        bind_to: "p".into(),
        branch: Some("main".into()),
        trigger: "cli".into(),
        ..RunScope::default()
    };
    for _ in 0..2 {
        let run = store.begin_run(&scope).unwrap();
        store.finish_run(run, RunEnd::Succeeded).unwrap();
    }
    drop(store);
    path
}

/// Attacks "readers never wait on the writer": while another process holds a write
/// transaction on the store (a page commit that takes long), `scansync runs`, `findings` and
/// `store prune --dry-run` read through their read-only connection and end within a bounded
/// time, successfully.
#[test]
fn readers_end_while_another_process_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled_store(dir.path());
    let writer = db(&path);
    writer
        .execute_batch("BEGIN IMMEDIATE; UPDATE sync_runs SET pages = pages + 1;")
        .unwrap();
    let p = path.to_str().unwrap();
    for args in [
        vec!["runs", "--store", p],
        vec!["findings", "--store", p],
        vec!["store", "prune", "--dry-run", "--store", p],
    ] {
        let out = run_bounded(&args, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{args:?} did not end while the writer held its lock"));
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    writer.execute_batch("ROLLBACK").unwrap();
}

/// Attacks "`scansync store prune --dry-run` shows what would go" and writes nothing: on a
/// store whose old rows would go, the dry run leaves the database file byte for byte as it
/// was and the rows all there.
#[test]
fn store_prune_dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled_store(dir.path());
    let c = db(&path);
    c.execute_batch(
        "UPDATE sync_runs SET started_at = '2001-01-01T00:00:00.000Z',
                              finished_at = '2001-01-01T00:00:00.000Z';
         INSERT INTO hook_deliveries (scan, delivery_id, received_at)
             VALUES ('shop', 'old', '2001-01-01T00:00:00.000Z');
         INSERT INTO hook_deliveries (scan, delivery_id, received_at)
             VALUES ('shop', 'newer', '2002-01-01T00:00:00.000Z');
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
    drop(c);
    let before = std::fs::read(&path).unwrap();
    let p = path.to_str().unwrap();

    let out = run_bounded(&["store", "prune", "--dry-run", "--store", p], WAIT).expect("ends");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1  webhook delivery ids would go"),
        "{stdout}"
    );
    assert!(stdout.contains("1  runs would go"), "{stdout}");

    let c = db(&path);
    let runs: i64 = c
        .query_row("SELECT count(*) FROM sync_runs", [], |r| r.get(0))
        .unwrap();
    let ids: i64 = c
        .query_row("SELECT count(*) FROM hook_deliveries", [], |r| r.get(0))
        .unwrap();
    drop(c);
    assert_eq!((runs, ids), (2, 2));
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the dry run changed the database file"
    );
}

/// Guards the config checks of the new keys (issue #14): a zero or negative retention, an
/// unknown retention key, `max_connections = 0` and an absurd duration each exit 78 naming the
/// field; an absurd but valid retention passes without a crash.
#[test]
fn new_keys_with_bad_values_exit_78_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[store]\npath = \"scansync.db\"\n";
    let cases = [
        (
            "retention = { runs = \"0s\" }\n",
            "",
            "store.retention.runs",
        ),
        (
            "retention = { events = \"-1d\" }\n",
            "",
            "store.retention.events",
        ),
        (
            "retention = { runz = \"1d\" }\n",
            "",
            "store.retention.runz",
        ),
        (
            "retention = { branch_scopes = \"99999999999999999999d\" }\n",
            "",
            "store.retention.branch_scopes",
        ),
        (
            "",
            "\n[server]\nlisten = \"127.0.0.1:8787\"\nmax_connections = 0\n",
            "server.max_connections",
        ),
    ];
    for (store_extra, rest, field) in cases {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, format!("{base}{store_extra}{rest}")).unwrap();
        let out = run_bounded(&["check-config", "--config", path.to_str().unwrap()], WAIT)
            .expect("check-config ends");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{field}: {stderr}");
        assert!(stderr.contains(field), "{field}: {stderr}");
    }
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!("{base}retention = {{ runs = \"9999999999d\" }}\n"),
    )
    .unwrap();
    let out = run_bounded(&["check-config", "--config", path.to_str().unwrap()], WAIT)
        .expect("check-config ends");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `scansync run` child process on `config`, its stderr in a file; returns the child, the
/// stderr file and the listener's address, read from its "listening on" line.
/// The caller owns the child and waits on it; here it is killed and waited on before any
/// panic.
#[allow(clippy::zombie_processes)]
async fn spawn_daemon(config: &Path, log: &Path) -> (std::process::Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scansync"))
        .args(["run", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(at) = text.find("listening on http://") {
            let rest = &text[at + "listening on http://".len()..];
            let addr: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"')
                .collect();
            match addr.parse() {
                Ok(addr) => return (child, addr),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("not an address after \"listening on\": {addr:?}: {e}");
                }
            }
        }
        if start.elapsed() >= WAIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon did not say where it listens:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Attacks "a flood of refused requests logged at a bounded rate", on the real binary: 300
/// unsigned pushes, 300 pushes to a scan that does not exist, 300 pushes with a wrong
/// signature and 200 connections past `max_connections` cost a handful of log lines, not one
/// per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refused_requests_is_logged_at_a_bounded_rate() {
    use tokio::io::AsyncReadExt;
    let sim = sim(0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let scans = hook_scan(dir.path(), "gh", "github", GITHUB_SECRET);
    let (config, _store) = write_config(&sim, dir.path(), "", "max_connections = 4\n", &scans);
    let log = dir.path().join("stderr.log");
    let (mut child, addr) = spawn_daemon(&config, &log).await;
    let client = reqwest::Client::new();
    // Wait until the store is open (hooks answer 503 before).
    let start = Instant::now();
    loop {
        let r = client.get(format!("http://{addr}/readyz")).send().await;
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(start.elapsed() < WAIT, "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let push = fixture("github_push.json");
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..300 {
        for (path, sig) in [
            ("/hooks/gh", None),
            ("/hooks/nope", Some("sha256=00")),
            ("/hooks/gh", Some("sha256=0123456789abcdef")),
        ] {
            let mut req = client
                .post(format!("http://{addr}{path}"))
                .header("X-GitHub-Event", "push")
                .header("X-GitHub-Delivery", format!("flood-{i}"));
            if let Some(sig) = sig {
                req = req.header("X-Hub-Signature-256", sig);
            }
            let status = req
                .body(push.clone())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            *statuses.entry(status).or_insert(0) += 1;
        }
    }
    // Connections past the cap: hold the 4 places, then knock 200 times.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..200 {
        if let Ok(mut c) = tokio::net::TcpStream::connect(addr).await {
            let mut buf = [0u8; 16];
            let _ = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await;
        }
    }
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alive = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    sim.shutdown().await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(alive, "the daemon died:\n{text}");
    assert_eq!(
        statuses,
        [(401, 600), (404, 300)].into_iter().collect(),
        "unexpected answers"
    );
    let refused = text
        .lines()
        .filter(|l| l.contains("webhook refused"))
        .count();
    let closed = text
        .lines()
        .filter(|l| l.contains("connection closed"))
        .count();
    let lines = text.lines().count();
    assert!(
        (1..=6).contains(&refused) && closed <= 6 && lines <= 60,
        "{refused} 'webhook refused' lines, {closed} 'connection closed' lines, {lines} lines in all:\n{text}"
    );
}

/// Attacks "`metrics_token_file` required when `listen` is not loopback and not
/// `behind_proxy` (or refuse to start, say which)" on `run` itself: the daemon refuses to
/// start on 0.0.0.0 (and on [::]) without it, exit 78, naming the key.
#[test]
fn run_refuses_to_listen_beyond_loopback_without_a_metrics_token() {
    let dir = tempfile::tempdir().unwrap();
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            format!("[store]\npath = \"scansync.db\"\n\n[server]\nlisten = \"{listen}\"\nbehind_proxy = false\n"),
        )
        .unwrap();
        let out = run_bounded(&["run", "--config", path.to_str().unwrap()], WAIT)
            .expect("run refuses at once instead of serving");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{listen}: {stderr}");
        assert!(
            stderr.contains("server.metrics_token_file"),
            "{listen}: {stderr}"
        );
        assert!(
            !dir.path().join("scansync.db").exists(),
            "{listen}: the store was created"
        );
    }
}

/// Attacks the listener's size limits: a 100 MB chunked body to a hook and a 1 MB header
/// are refused (413 / 431, or the connection closed) within a bounded time, nothing starts,
/// and the daemon serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_body_and_a_1_mb_header_are_refused_and_the_daemon_serves_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (sim, _dir, d, store) = hook_daemon("gh", "github", GITHUB_SECRET, "", "").await;

    let mut c = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    c.write_all(
        b"POST /hooks/gh HTTP/1.1\r\nhost: x\r\nx-github-event: push\r\nx-github-delivery: big\r\n\
          x-hub-signature-256: sha256=00\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let head = format!("{:x}\r\n", chunk.len());
    let mut sent = 0usize;
    let writing = async {
        for _ in 0..100 {
            if c.write_all(head.as_bytes()).await.is_err()
                || c.write_all(&chunk).await.is_err()
                || c.write_all(b"\r\n").await.is_err()
            {
                break;
            }
            sent += 1;
        }
    };
    tokio::time::timeout(WAIT, writing)
        .await
        .expect("the writes end");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, c.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "no end to the 100 MB request (sent {sent} MiB)"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 413"),
        "sent {sent} MiB, answer: {answer:.200}"
    );

    let mut c = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let big = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-pad: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let _ = c.write_all(big.as_bytes()).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, c.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no end to the 1 MB header");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        answer.is_empty()
            || answer.starts_with("HTTP/1.1 431")
            || answer.starts_with("HTTP/1.1 400"),
        "{answer:.200}"
    );

    let r = reqwest::get(d.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!d.task.is_finished());
    assert!(run_ids(&store).is_empty());
    d.stop().await;
    sim.shutdown().await;
}

/// Attacks the reason `metrics_token_file` is required off loopback ("/metrics names the
/// scans and counts their findings"): with a token set, a stranger without it still reads
/// every scan's name (and how long ago it last synced) from `/readyz`, which has no token.
/// (A judgment call: `/readyz` must stay open for load balancers, but it need not name the
/// scans to them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_does_not_name_the_scans_to_a_caller_without_the_metrics_token() {
    let sim = sim(0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let scans = hook_scan(dir.path(), "payments-acme-prod", "github", GITHUB_SECRET);
    std::fs::write(dir.path().join("metrics-token"), "mt-9f2c4e7a1b3d5f60aa\n").unwrap();
    let (config, _store) = write_config(
        &sim,
        dir.path(),
        "",
        "metrics_token_file = \"metrics-token\"\n",
        &scans,
    );
    let mut d = start(&config).await;
    d.ready().await;
    let metrics = reqwest::get(d.url("/metrics")).await.unwrap();
    assert_eq!(metrics.status(), 401);
    let readyz = reqwest::get(d.url("/readyz")).await.unwrap();
    let status = readyz.status().as_u16();
    let body = readyz.text().await.unwrap();
    d.stop().await;
    sim.shutdown().await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains("payments-acme-prod"),
        "/readyz names the scans without the token: {body}"
    );
}

/// Attacks "no overflow on hostile input (use `abs_diff`)" beyond the one `(now - sent)` the
/// issue names: a vendor (or whoever stands between it and scansync) sends a finding whose
/// `created_at` is the number -9223372036854775808. `vendors::normalize_time` computes
/// `n.abs()` on it, which overflows: with overflow checks (every debug and test build) the
/// sync panics instead of storing the finding without that time. (`n.unsigned_abs()` is the
/// fix.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_timestamp_of_i64_min_does_not_crash_a_sync() {
    use std::sync::Arc;
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if k == "created_at" {
                        *x = Value::from(i64::MIN);
                    } else {
                        walk(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let sim = sim(0.0).await;
    let rewrite: common::Rewrite = Arc::new(|_path: &str, a: &mut common::Answer| {
        if let Ok(mut v) = serde_json::from_slice::<Value>(&a.body) {
            walk(&mut v);
            a.body = serde_json::to_vec(&v).unwrap();
        }
    });
    let (proxy, _gate, _held) = common::proxy(&sim, None, rewrite).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let store = dir.path().join("scansync.db");
    sim.write_config(&config, &store).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let direct = format!("http://{}", sim.addr());
    assert!(text.contains(&direct));
    std::fs::write(&config, text.replace(&direct, &proxy)).unwrap();

    let path = config.to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || {
        run_bounded(
            &["--config", &path, "sync", "--scan", "codethreat-project-1"],
            WAIT,
        )
    })
    .await
    .unwrap()
    .expect("sync ends");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    sim.shutdown().await;
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stored: i64 = db(&store)
        .query_row("SELECT count(*) FROM findings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 10, "{stderr}");
}

/// `(PRAGMA data_version, every owner's heartbeat_at)` seen from a connection of this test:
/// data_version moves when another connection commits; the heartbeats tell the daemon's
/// own periodic write apart from any other.
fn write_marks(c: &Connection) -> (i64, Vec<String>) {
    let v: i64 = c
        .query_row("PRAGMA data_version", [], |r| r.get(0))
        .unwrap();
    let mut stmt = c
        .prepare("SELECT heartbeat_at FROM owners ORDER BY owner")
        .unwrap();
    let beats = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<String>, _>>()
        .unwrap();
    (v, beats)
}

/// Attacks "`/readyz` does not write on every request" (and `/metrics` reads only): 100
/// probes and 100 scrapes leave the store's `data_version` where it was whenever the
/// daemon's own heartbeat did not write meanwhile (checked by its `heartbeat_at`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_and_metrics_write_nothing_to_the_store() {
    let (sim, _dir, d, store) = hook_daemon("gh", "github", GITHUB_SECRET, "", "").await;
    let client = reqwest::Client::new();
    let c = db(&store);
    let mut checked = false;
    for _ in 0..5 {
        let before = write_marks(&c);
        for _ in 0..100 {
            let r = client.get(d.url("/readyz")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let r = client.get(d.url("/metrics")).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
        let after = write_marks(&c);
        if before.1 == after.1 {
            assert_eq!(
                before.0, after.0,
                "the store was written while only probes and scrapes came"
            );
            checked = true;
            break;
        }
    }
    d.stop().await;
    sim.shutdown().await;
    assert!(checked, "every window had a heartbeat in it");
}

/// Attacks "a push on GitHub starts the scan bound to it" against event confusion: the
/// `X-GitHub-Event` header is not signed, so a signed body of another event that carries a
/// `ref` (here a `workflow_dispatch`, which GitHub sends with `"ref": "refs/heads/main"`),
/// captured and re-sent with `X-GitHub-Event: push`, passes as a push and starts a run,
/// although no push happened (`platform::github` reads only `ref` and `deleted`, not what a
/// push body always has: `before`, `after`, `pusher`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_non_push_body_relabelled_as_a_push_starts_nothing() {
    let (sim, _dir, d, store) = hook_daemon("gh", "github", GITHUB_SECRET, "", "").await;
    let dispatch = r#"{"inputs":{},"ref":"refs/heads/main","repository":{"id":1296269,"full_name":"octo/hello"},"organization":{"login":"octo"},"sender":{"login":"octocat"},"workflow":".github/workflows/scan.yml"}"#.to_string();
    let r = post(
        &d.url("/hooks/gh"),
        &github_headers("push", "wd-1", &dispatch),
        dispatch.clone(),
    )
    .await;
    let runs = run_ids(&store);
    d.stop().await;
    sim.shutdown().await;
    assert_ne!(
        r.status, 202,
        "a workflow_dispatch body started a run as a push: {}",
        r.json
    );
    assert!(runs.is_empty(), "{runs:?}");
}

/// Attacks "retention: what is older than *the setting* is gone after a prune" on
/// `scansync store prune --store FILE`: when the config names a retention it cannot accept
/// (here `runs = "10y"`, meant as ten years, refused since `y` is no unit), the command does
/// not stop: `cli::store` falls back to the default retention (180 days) without a word and
/// deletes runs the operator meant to keep for ten years.
#[test]
fn store_prune_with_a_config_it_cannot_read_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled_store(dir.path());
    let c = db(&path);
    c.execute_batch(
        "UPDATE sync_runs SET started_at = '2025-01-01T00:00:00.000Z',
                              finished_at = '2025-01-01T00:00:00.000Z';",
    )
    .unwrap();
    drop(c);
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[store]\npath = \"scansync.db\"\nretention = { runs = \"10y\", events = \"10y\" }\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();

    let out = run_bounded(
        &[
            "--config",
            config.to_str().unwrap(),
            "store",
            "prune",
            "--store",
            p,
        ],
        WAIT,
    )
    .expect("ends");
    let runs: i64 = db(&path)
        .query_row("SELECT count(*) FROM sync_runs", [], |r| r.get(0))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        runs, 2,
        "runs the config meant to keep were pruned:\n{stdout}{stderr}"
    );
    assert_ne!(out.status.code(), Some(0), "{stdout}{stderr}");
}

/// Guards the replay guard on Bitbucket (Cloud, HMAC over the body like GitHub): the same
/// signed push re-sent under another `X-Request-UUID`, or under none, starts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bitbucket_push_replayed_under_another_or_no_request_uuid_starts_nothing() {
    const SECRET: &str = "bb-secret-77a01c9e4f2d6b38";
    let (sim, _dir, d, store) = hook_daemon("bb", "bitbucket", SECRET, "", "").await;
    let hook = d.url("/hooks/bb");
    let push = fixture("bitbucket_cloud_push.json");
    let headers = |uuid: Option<&str>| {
        let mut h = vec![
            ("X-Event-Key", "repo:push".to_string()),
            (
                "X-Hub-Signature",
                format!("sha256={}", hex_hmac(SECRET.as_bytes(), push.as_bytes())),
            ),
        ];
        if let Some(u) = uuid {
            h.push(("X-Request-UUID", u.to_string()));
        }
        h
    };
    let r = post(&hook, &headers(Some("u-1")), push.clone()).await;
    assert_eq!(r.status, 202, "{}", r.json);
    let first = r.json["run_id"].as_i64().unwrap();
    finished_run(&store, first).await;
    let other = post(&hook, &headers(Some("u-2")), push.clone()).await;
    let none = post(&hook, &headers(None), push.clone()).await;
    let runs = run_ids(&store);
    d.stop().await;
    sim.shutdown().await;
    assert_eq!(
        (other.status, other.json["result"].as_str()),
        (200, Some("duplicate")),
        "{}",
        other.json
    );
    assert_eq!(
        (none.status, none.json["result"].as_str()),
        (200, Some("duplicate")),
        "{}",
        none.json
    );
    assert_eq!(runs, vec![first]);
}

/// Attacks "config errors exit 78 naming the field" for `[server] max_connections` (and
/// `[daemon] concurrency`): a value past what a tokio semaphore holds (2^61 - 1) passes
/// check-config (`count` takes any usize), and `scansync run` then panics in
/// `Semaphore::new` (exit 101) instead of refusing the config with exit 78.
#[test]
fn an_absurd_max_connections_is_a_config_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[store]\npath = \"scansync.db\"\n\n[server]\nlisten = \"127.0.0.1:0\"\nmax_connections = 9223372036854775807\n",
    )
    .unwrap();
    let check = run_bounded(&["check-config", "--config", path.to_str().unwrap()], WAIT)
        .expect("check-config ends");
    let run = run_bounded(
        &["run", "--config", path.to_str().unwrap()],
        Duration::from_secs(20),
    );
    let (code, stderr) = match &run {
        Some(out) => (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        None => (None, "(still running after 20 s)".to_string()),
    };
    assert!(!stderr.contains("panicked"), "run panicked: {stderr}");
    assert_eq!(
        check.status.code(),
        Some(78),
        "check-config: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(code, Some(78), "run: {stderr}");
    assert!(stderr.contains("server.max_connections"), "{stderr}");
}

/// Attacks "the watchdog stops pinging when the store is dead so systemd restarts the
/// service", on the real binary under a fake systemd (`NOTIFY_SOCKET`, `WATCHDOG_USEC`,
/// a lease TTL of 1.5 s): while another process holds the store's write lock the
/// `WATCHDOG=1` pings stop; once it lets go they come back.
#[test]
fn the_watchdog_stops_pinging_while_the_store_cannot_be_written() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let store = dir.path().join("scansync.db");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[store]\npath = \"scansync.db\"\n").unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_scansync"))
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .env_remove("WATCHDOG_PID")
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .env("SCANSYNC_LEASE_TTL_MS", "1500")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Messages that arrive until `until` says stop or `limit` passes; true when it stopped.
    let mut buf = vec![0u8; 4096];
    let mut watch = |limit: Duration, until: &mut dyn FnMut(Option<&str>) -> bool| -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            let msg = match sock.recv(&mut buf) {
                Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => None,
            };
            if until(msg.as_deref()) {
                return true;
            }
        }
        false
    };
    let ready = watch(WAIT, &mut |m| m.is_some_and(|m| m.contains("READY=1")));
    let pinged = ready && watch(WAIT, &mut |m| m.is_some_and(|m| m.contains("WATCHDOG=1")));

    // Another process takes the write lock and keeps it.
    let locker = db(&store);
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // Within a bounded time, a quiet stretch of 3 s without a single ping.
    let mut quiet_since = Instant::now();
    let went_quiet = pinged
        && watch(WAIT, &mut |m| {
            if m.is_some_and(|m| m.contains("WATCHDOG=1")) {
                quiet_since = Instant::now();
            }
            quiet_since.elapsed() > Duration::from_secs(3)
        });
    locker.execute_batch("ROLLBACK").unwrap();
    let back = went_quiet && watch(WAIT, &mut |m| m.is_some_and(|m| m.contains("WATCHDOG=1")));
    let alive = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        ready && pinged,
        "no READY=1 / WATCHDOG=1 under the fake systemd:\n{text}"
    );
    assert!(
        went_quiet,
        "the pings went on while the store could not be written:\n{text}"
    );
    assert!(
        back,
        "the pings did not come back once the store could be written:\n{text}"
    );
    assert!(alive, "{text}");
}
