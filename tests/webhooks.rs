//! Webhook notifications end to end: the real binary (`scansync run`, `sync`, `webhook`)
//! against the vendor simulator, and a loopback receiver in this file that checks every
//! signature with its own HMAC-SHA256 (the `hmac` and `sha2` crates directly, never
//! scansync's signer). Nothing here asserts how fast anything is: waits only bound how long
//! a broken build may hang.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use rusqlite::{Connection, OpenFlags};
use scansync::sim::{SimOptions, Simulator};
use sha2::Sha256;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_scansync");
/// The longest any wait here may take before the test fails: generous for a loaded machine.
const WAIT: Duration = Duration::from_secs(60);
/// The variable the configs name in `secret_env`.
const SECRET_VAR: &str = "SCANSYNC_TEST_WEBHOOK_SECRET";
/// A Standard Webhooks secret: whsec_ + base64 of 32 bytes.
const SECRET: &str = "whsec_dGVzdC1rZXktZm9yLXNjYW5zeW5jLXdlYmhvb2tzISE=";
/// The part of the secret that is the key's encoding, which must not leak either.
const SECRET_BODY: &str = "dGVzdC1rZXktZm9yLXNjYW5zeW5jLXdlYmhvb2tzISE=";

fn key_of(secret: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap()
}

/// The receiver's own check, written from the Standard Webhooks spec: HMAC-SHA256 over
/// `id.timestamp.body`, base64, compared with every `v1,` entry of `webhook-signature`.
fn signature_valid(key: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(ts), Some(sigs)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        return false;
    };
    let Ok(ts_num) = ts.parse::<i64>() else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - ts_num).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    sigs.split(' ').any(|entry| {
        entry.strip_prefix("v1,").is_some_and(|sig| {
            base64::engine::general_purpose::STANDARD
                .decode(sig)
                .is_ok_and(|got| got.as_slice() == expected.as_slice())
        })
    })
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    webhook_id: String,
    timestamp: String,
    body: Bytes,
    verified: bool,
}

impl Received {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// What the receiver answers.
enum Reply {
    Status(u16),
    /// A status with `Retry-After: 1`, so the sender retries within a second or two.
    RetrySoon(u16),
    /// A redirect to `location`.
    Redirect(u16, String),
    /// Hold the request without answering (a receiver that hangs).
    Hang,
}

type Behaviour = dyn Fn(&str, usize, bool) -> Reply + Send + Sync;

/// A loopback webhook receiver. `behaviour(path, n, verified)` decides the answer to the
/// `n`-th request (from 0) on `path`.
#[derive(Clone)]
struct Receiver {
    key: Arc<Vec<u8>>,
    got: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Arc<Behaviour>>>,
    port: u16,
}

impl Receiver {
    async fn start(
        secret: &str,
        behaviour: impl Fn(&str, usize, bool) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            key: Arc::new(key_of(secret)),
            got: Arc::default(),
            behaviour: Arc::new(Mutex::new(Arc::new(behaviour))),
            port: listener.local_addr().unwrap().port(),
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(receiver.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        receiver
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn set_behaviour(
        &self,
        behaviour: impl Fn(&str, usize, bool) -> Reply + Send + Sync + 'static,
    ) {
        *self.behaviour.lock().unwrap() = Arc::new(behaviour);
    }

    fn received(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    fn paths(&self) -> BTreeSet<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.path.clone())
            .collect()
    }
}

async fn handle(State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let verified = signature_valid(&r.key, &headers, &body);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let n = {
        let mut got = r.got.lock().unwrap();
        let n = got.iter().filter(|x| x.path == path).count();
        got.push(Received {
            path: path.clone(),
            webhook_id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            body,
            verified,
        });
        n
    };
    let behaviour = r.behaviour.lock().unwrap().clone();
    match behaviour(&path, n, verified) {
        Reply::Status(s) => StatusCode::from_u16(s).unwrap().into_response(),
        Reply::RetrySoon(s) => (
            StatusCode::from_u16(s).unwrap(),
            [("retry-after", "1")],
            "try again in a second",
        )
            .into_response(),
        Reply::Redirect(s, location) => (
            StatusCode::from_u16(s).unwrap(),
            [("location", location)],
            "",
        )
            .into_response(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

/// Accepts what verifies (204), refuses the rest (401).
fn accept_verified(_: &str, _: usize, verified: bool) -> Reply {
    Reply::Status(if verified { 204 } else { 401 })
}

async fn sim(seed: u64, projects: u32, findings_per_project: u32) -> Simulator {
    Simulator::start(SimOptions {
        seed,
        projects,
        findings_per_project,
        scan_seconds: 0.0,
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts")
}

/// A config pointing at `sim`, with `rest` (scans and webhooks) instead of its scans.
fn write_config(sim: &Simulator, dir: &Path, rest: &str) -> (PathBuf, PathBuf) {
    let config = dir.join("config.toml");
    let store = dir.join("scansync.db");
    sim.write_config(&config, &store).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let head = &text[..text.find("[[scans]]").expect("generated config has scans")];
    std::fs::write(&config, format!("{head}{rest}")).unwrap();
    (config, store)
}

fn salt_scan(name: &str, asset: &str) -> String {
    format!(
        "[[scans]]\nname = \"{name}\"\ninstance = \"sim-salt\"\nbind_to = \"{asset}\"\nschedule = \"now\"\n\n"
    )
}

fn webhook(name: &str, url: &str, extra: &str) -> String {
    format!("[webhooks.{name}]\nurl = \"{url}\"\nsecret_env = \"{SECRET_VAR}\"\n{extra}\n\n")
}

fn command(config: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .env(SECRET_VAR, SECRET)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

fn spawn_daemon(config: &Path, stderr: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr)
        .unwrap();
    command(config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("scansync starts")
}

/// `scansync --config C ARGS…` to completion, off the async workers.
async fn run_cli(config: &Path, args: &[&str]) -> Output {
    let mut cmd = command(config);
    cmd.args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > WAIT {
            let _ = child.kill();
            panic!("scansync did not exit");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `cond` until it holds; panics with `what` after [`WAIT`].
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An outbox row as the tests look at it.
#[derive(Debug, Clone)]
struct OutboxRow {
    msg_id: String,
    webhook: String,
    event_type: String,
    state: String,
    attempts: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
}

fn outbox(store: &Path) -> Vec<OutboxRow> {
    if !store.exists() {
        return Vec::new();
    }
    let Ok(c) = Connection::open_with_flags(store, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return Vec::new();
    };
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let Ok(mut stmt) = c.prepare(
        "SELECT msg_id, webhook, event_type, state, attempts, last_status, last_error \
         FROM webhook_outbox ORDER BY id",
    ) else {
        return Vec::new();
    };
    stmt.query_map([], |r| {
        Ok(OutboxRow {
            msg_id: r.get(0)?,
            webhook: r.get(1)?,
            event_type: r.get(2)?,
            state: r.get(3)?,
            attempts: r.get(4)?,
            last_status: r.get(5)?,
            last_error: r.get(6)?,
        })
    })
    .map(|rows| rows.filter_map(Result::ok).collect())
    .unwrap_or_default()
}

/// `scansync webhook pending --format json`, parsed.
async fn pending_json(config: &Path) -> Vec<serde_json::Value> {
    let out = run_cli(config, &["webhook", "pending", "--format", "json"]).await;
    assert!(out.status.success(), "{}", stderr_of(&out));
    stdout_of(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn assert_no_secret(text: &str) {
    assert!(
        !text.contains(SECRET) && !text.contains(SECRET_BODY),
        "the webhook secret was printed:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_twice_with_503_then_accepted_with_one_stable_webhook_id_and_valid_signatures() {
    let sim = sim(1, 1, 5).await;
    let receiver = Receiver::start(SECRET, |_, n, verified| {
        if n < 2 {
            Reply::RetrySoon(503)
        } else {
            accept_verified("", n, verified)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = write_config(
        &sim,
        dir.path(),
        &format!(
            "{}{}",
            salt_scan("s", "project-1"),
            webhook("hook", &receiver.url("/hook"), "")
        ),
    );
    let log = dir.path().join("stderr.log");
    let mut daemon = spawn_daemon(&config, &log);
    wait_for("the notification to be delivered", || {
        outbox(&store)
            .first()
            .is_some_and(|r| r.state == "delivered")
    })
    .await;

    let got = receiver.received("/hook");
    assert_eq!(got.len(), 3, "two refusals and one acceptance: {got:?}");
    assert!(
        got.iter().all(|r| r.verified),
        "every attempt was signed right"
    );
    let id = &got[0].webhook_id;
    assert!(id.starts_with("msg_"), "{id}");
    assert!(
        got.iter().all(|r| &r.webhook_id == id),
        "one webhook-id for every retry"
    );
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the same body every time"
    );
    assert!(got.iter().all(|r| r.timestamp.parse::<i64>().is_ok()));

    let body = got[2].json();
    assert_eq!(body["type"], "findings.new");
    assert!(body["timestamp"].is_string());
    let data = &body["data"];
    assert_eq!(data["scan"], "s");
    assert_eq!(data["vendor"], "saltsecurity");
    assert_eq!(data["instance"], "sim-salt");
    assert!(data["run_id"].is_i64());
    assert_eq!(data["counts"]["new"], 5);
    assert_eq!(data["findings"].as_array().unwrap().len(), 5);
    assert_eq!(data["more"], 0);

    let rows = outbox(&store);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(&rows[0].msg_id, id);
    assert_eq!((rows[0].attempts, rows[0].last_status), (3, Some(204)));
    assert!(pending_json(&config).await.is_empty());

    signal(&daemon, "TERM");
    assert!(wait_exit(&mut daemon).await.success());
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("webhook delivery failed; will retry"),
        "{log_text}"
    );
    assert!(log_text.contains("webhook delivered"), "{log_text}");
    assert_no_secret(&log_text);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_delivery_delivers_after_restart_with_the_same_webhook_id() {
    let sim = sim(1, 1, 5).await;
    // The first attempt hangs: the daemon is killed while it waits for the answer.
    let receiver = Receiver::start(SECRET, |_, n, verified| {
        if n == 0 {
            Reply::Hang
        } else {
            accept_verified("", n, verified)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = write_config(
        &sim,
        dir.path(),
        &format!(
            "{}{}",
            salt_scan("s", "project-1"),
            webhook("hook", &receiver.url("/hook"), "timeout = \"3s\"")
        ),
    );
    let log = dir.path().join("stderr.log");
    let mut first = spawn_daemon(&config, &log);
    wait_for("the first delivery attempt", || {
        !receiver.received("/hook").is_empty()
    })
    .await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let sent_before = receiver.received("/hook");
    let id = sent_before[0].webhook_id.clone();

    // The notification survived the kill, still to be delivered.
    let rows = outbox(&store);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].state, "pending");
    assert_eq!(rows[0].msg_id, id);
    let pending = run_cli(&config, &["webhook", "pending"]).await;
    assert!(stdout_of(&pending).contains(&id), "{}", stdout_of(&pending));

    let mut second = spawn_daemon(&config, &log);
    wait_for("delivery by the restarted daemon", || {
        outbox(&store)
            .first()
            .is_some_and(|r| r.state == "delivered")
    })
    .await;
    let got = receiver.received("/hook");
    assert!(got.len() >= 2, "{got:?}");
    assert!(got.iter().all(|r| r.webhook_id == id), "{got:?}");
    let accepted = got.last().unwrap();
    assert!(accepted.verified);
    assert_eq!(accepted.body, sent_before[0].body);
    assert_eq!(accepted.json()["type"], "findings.new");
    signal(&second, "TERM");
    assert!(wait_exit(&mut second).await.success());
    assert_no_secret(&std::fs::read_to_string(&log).unwrap());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_with_the_wrong_secret_shows_up_as_failed_deliveries_never_a_crash() {
    let sim = sim(1, 1, 5).await;
    // The receiver was given another secret: nothing verifies, everything gets 401.
    let receiver = Receiver::start(
        "whsec_YW5vdGhlci1zZWNyZXQtZW50aXJlbHktMTIzNDU2Nzg5MA==",
        |_, _, verified| {
            if verified {
                Reply::Status(204)
            } else {
                Reply::RetrySoon(401)
            }
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = write_config(
        &sim,
        dir.path(),
        &format!(
            "{}{}",
            salt_scan("s", "project-1"),
            webhook("hook", &receiver.url("/hook"), "")
        ),
    );
    let log = dir.path().join("stderr.log");
    let mut daemon = spawn_daemon(&config, &log);
    wait_for("three refused attempts recorded", || {
        outbox(&store)
            .first()
            .is_some_and(|r| r.attempts >= 3 && r.last_status == Some(401))
    })
    .await;
    assert!(receiver.received("/hook").iter().all(|r| !r.verified));

    let rows = pending_json(&config).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["state"], "pending", "still retried, not lost");
    assert_eq!(rows[0]["webhook"], "hook");
    assert_eq!(rows[0]["last_status"], 401);
    assert!(rows[0]["attempts"].as_u64().unwrap() >= 2);
    let error = rows[0]["last_error"].as_str().unwrap();
    assert!(error.contains("HTTP 401 Unauthorized"), "{error}");
    assert!(
        !error.contains("/hook"),
        "the URL path is not shown: {error}"
    );

    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon still runs"
    );
    signal(&daemon, "TERM");
    assert!(wait_exit(&mut daemon).await.success());
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(!log_text.contains("panicked"), "{log_text}");
    assert_no_secret(&log_text);
    sim.shutdown().await;
}

/// A seed whose asset `project-1` (`n` findings) has no critical finding but at least one
/// high one, so a critical-only webhook must stay silent while a high-or-worse one speaks.
fn seed_without_critical(n: u32) -> (u64, usize) {
    use scansync::sim::data::{project_findings, SimSeverity};
    (1..10_000)
        .find_map(|seed| {
            let sev: Vec<SimSeverity> = project_findings(seed, 1, n, 0.0, 0)
                .map(|f| f.severity)
                .collect();
            let high = sev.iter().filter(|s| **s == SimSeverity::High).count();
            (!sev.contains(&SimSeverity::Critical) && high > 0 && high < sev.len())
                .then_some((seed, high))
        })
        .expect("some seed fits")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_out_scans_and_severities_send_nothing_and_sync_delivers_before_exit() {
    let (seed, highs) = seed_without_critical(6);
    let sim = sim(seed, 2, 6).await;
    let receiver = Receiver::start(SECRET, accept_verified).await;
    let dir = tempfile::tempdir().unwrap();
    let scans = format!(
        "{}{}{}",
        salt_scan("s", "project-1"),
        salt_scan("other", "project-2"),
        salt_scan("broken", "no-such-asset")
    );
    let hooks = [
        webhook("all-of-s", &receiver.url("/all-of-s"), "scans = [\"s\"]"),
        webhook(
            "critical",
            &receiver.url("/critical"),
            "scans = [\"s\"]\nmin_severity = \"critical\"",
        ),
        webhook(
            "high",
            &receiver.url("/high"),
            "scans = [\"s\"]\nmin_severity = \"high\"",
        ),
        webhook(
            "fixes",
            &receiver.url("/fixes"),
            "events = [\"findings.fixed\"]",
        ),
        webhook("ops", &receiver.url("/ops"), "events = [\"run.failed\"]"),
    ]
    .concat();
    let (config, store) = write_config(&sim, dir.path(), &format!("{scans}{hooks}"));

    let out = run_cli(&config, &["sync"]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "the broken scan fails the sync: {}{}",
        stdout_of(&out),
        stderr_of(&out)
    );
    assert_no_secret(&stderr_of(&out));

    // Delivered by `sync` itself before it exited: no daemon runs here.
    assert_eq!(
        receiver.paths(),
        ["/all-of-s", "/high", "/ops"]
            .into_iter()
            .map(String::from)
            .collect::<BTreeSet<_>>()
    );
    let all = receiver.received("/all-of-s");
    assert_eq!(all.len(), 1);
    let data = &all[0].json()["data"];
    assert_eq!(data["scan"], "s", "nothing about scan \"other\"");
    assert_eq!(data["findings"].as_array().unwrap().len(), 6);

    let high = receiver.received("/high");
    assert_eq!(high.len(), 1);
    let listed = high[0].json()["data"]["findings"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(listed.len(), highs);
    assert!(listed.iter().all(|f| f["severity"] == "high"), "{listed:?}");

    let ops = receiver.received("/ops");
    assert_eq!(ops.len(), 1);
    let failed = ops[0].json();
    assert_eq!(failed["type"], "run.failed");
    assert_eq!(failed["data"]["scan"], "broken");
    assert_eq!(failed["data"]["state"], "failed");
    assert!(failed["data"]["error"]
        .as_str()
        .unwrap()
        .contains("no-such-asset"));

    assert!(receiver.got.lock().unwrap().iter().all(|r| r.verified));
    let rows = outbox(&store);
    assert!(rows.iter().all(|r| r.state == "delivered"), "{rows:?}");
    let mut written: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.webhook.clone(), r.event_type.clone()))
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            ("all-of-s".to_string(), "findings.new".to_string()),
            ("high".to_string(), "findings.new".to_string()),
            ("ops".to_string(), "run.failed".to_string()),
        ]
    );
    assert!(rows.iter().all(|r| r.last_error.is_none()));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_test_sends_a_signed_ping_and_exits_by_the_answer() {
    let sim = sim(1, 1, 1).await;
    let receiver = Receiver::start(SECRET, accept_verified).await;
    // "/elsewhere" redirects to another host name of the same server: not followed.
    let port = receiver.port;
    receiver.set_behaviour(move |path, n, verified| match path {
        "/down" => Reply::Status(500),
        "/elsewhere" => Reply::Redirect(302, format!("http://localhost:{port}/ok")),
        "/same-host" => Reply::Redirect(307, "/ok".into()),
        _ => accept_verified(path, n, verified),
    });
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let hooks = [
        webhook("ok", &receiver.url("/ok"), ""),
        webhook("down", &receiver.url("/down"), ""),
        webhook("elsewhere", &receiver.url("/elsewhere"), ""),
        webhook("same-host", &receiver.url("/same-host"), ""),
        webhook("closed", &format!("http://127.0.0.1:{closed_port}/x"), ""),
    ]
    .concat();
    let (config, _) = write_config(&sim, dir.path(), &hooks);

    let out = run_cli(&config, &["webhook", "test", "ok"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).starts_with("ok: HTTP 204 No Content (webhook-id msg_"),
        "{}",
        stdout_of(&out)
    );
    let ping = receiver.received("/ok");
    assert_eq!(ping.len(), 1);
    assert!(ping[0].verified);
    assert_eq!(ping[0].json()["type"], "ping");
    assert_eq!(ping[0].json()["data"]["webhook"], "ok");
    assert!(stdout_of(&out).contains(&ping[0].webhook_id));

    let out = run_cli(&config, &["webhook", "test", "down"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout_of(&out).contains("HTTP 500 Internal Server Error"),
        "{}",
        stdout_of(&out)
    );

    let out = run_cli(&config, &["webhook", "test", "elsewhere"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout_of(&out).contains("HTTP 302 Found"),
        "{}",
        stdout_of(&out)
    );
    assert!(
        stdout_of(&out).contains("not followed"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(
        receiver.received("/ok").len(),
        1,
        "the redirect was not followed"
    );

    let out = run_cli(&config, &["webhook", "test", "same-host"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout_of(&out));
    let followed = receiver.received("/ok");
    assert_eq!(followed.len(), 2, "a 307 on the same host is followed");
    assert!(followed[1].verified, "with the signed body intact");
    assert_eq!(followed[1].json()["data"]["webhook"], "same-host");

    let out = run_cli(&config, &["webhook", "test", "closed"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout_of(&out).contains("closed: no answer: cannot connect"),
        "{}",
        stdout_of(&out)
    );

    let out = run_cli(&config, &["webhook", "test", "nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("no webhook named \"nope\""),
        "{}",
        stderr_of(&out)
    );
    sim.shutdown().await;
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} failed");
}

fn succeeded_runs(store: &Path) -> i64 {
    Connection::open_with_flags(store, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .ok()
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM sync_runs WHERE state = 'succeeded'",
                [],
                |r| r.get(0),
            )
            .ok()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_added_by_sighup_gets_the_next_runs_new_findings() {
    let sim = Simulator::start(SimOptions {
        projects: 1,
        findings_per_project: 10,
        churn: 50.0,
        scan_seconds: 0.0,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let receiver = Receiver::start(SECRET, accept_verified).await;
    let dir = tempfile::tempdir().unwrap();
    let scan = salt_scan("s", "project-1").replace("\"now\"", "{ every = \"1s\" }");
    let (config, store) = write_config(&sim, dir.path(), &scan);
    let log = dir.path().join("stderr.log");
    let mut daemon = spawn_daemon(&config, &log);
    wait_for("a first run", || succeeded_runs(&store) >= 1).await;
    assert!(outbox(&store).is_empty(), "no webhook, no notification");

    write_config(
        &sim,
        dir.path(),
        &format!("{scan}{}", webhook("hook", &receiver.url("/hook"), "")),
    );
    signal(&daemon, "HUP");
    wait_for("the reload", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("config reloaded"))
    })
    .await;
    // Half of the asset's findings are replaced: the next run finds new ones.
    sim.advance();
    wait_for("a findings.new notification", || {
        !receiver.received("/hook").is_empty()
    })
    .await;
    let got = receiver.received("/hook");
    assert!(got[0].verified);
    let body = got[0].json();
    assert_eq!(body["type"], "findings.new");
    assert_eq!(body["data"]["scan"], "s");
    assert!(!body["data"]["findings"].as_array().unwrap().is_empty());
    signal(&daemon, "TERM");
    assert!(wait_exit(&mut daemon).await.success());
    sim.shutdown().await;
}
