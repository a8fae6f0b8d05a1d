//! Adversarial end-to-end tests (branch `attack3`): each shows a way the promise of issue
//! #12 ("a finding is `fixed` only when the vendor no longer reports it; no lost
//! notification, under overlap, lies and stops") still breaks, with the real `scansync`
//! binary (or the daemon in process) against the simulator. A loopback proxy in front of the
//! simulator tells the lies the simulator's own faults cannot. Each test FAILS on the code
//! it was written against; the assertion message says what should have happened.

use rusqlite::{Connection, OpenFlags};
use scansync::daemon::{self, DaemonEvent, DaemonHandle};
use scansync::sim::{SimOptions, Simulator};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest any wait here may take before the test fails: generous for a loaded machine.
const WAIT: Duration = Duration::from_secs(90);

fn db(store: &Path) -> Connection {
    let c = Connection::open_with_flags(store, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

fn scalar(store: &Path, sql: &str) -> i64 {
    db(store).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// `(state, error, fixed, missing, seen)` of run `id`.
fn run_row(store: &Path, id: i64) -> (String, Option<String>, i64, i64, i64) {
    db(store)
        .query_row(
            "SELECT state, error, fixed, missing, seen FROM sync_runs WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap()
}

/// Waits (on the store, not on a clock) until run `id` is no longer `running`.
async fn wait_run_ended(store: &Path, id: i64) {
    let start = Instant::now();
    loop {
        let state: Option<String> = store
            .exists()
            .then(|| {
                db(store)
                    .query_row("SELECT state FROM sync_runs WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .ok()
            })
            .flatten();
        if state.as_deref().is_some_and(|s| s != "running") {
            return;
        }
        assert!(start.elapsed() < WAIT, "run {id} did not end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `scansync ARGS` with `config`, off the async workers; `(exit code, stdout, stderr)`.
async fn scansync(config: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_scansync"));
    cmd.arg("--config").arg(config).args(args);
    cmd.env_remove("RUST_LOG");
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("scansync ends")
        .expect("scansync runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A response as the proxy may rewrite it.
struct Answer {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

type Rewrite = Arc<dyn Fn(&str, &mut Answer) + Send + Sync>;

/// A loopback proxy in front of the simulator: every request is forwarded; `hold` (when
/// given) holds CodeThreat scan status requests until the gate opens; `rewrite` may change
/// any answer (path and query given). Returns the proxy's base URL (`http://addr`), the
/// gate, and the count of status requests that arrived.
async fn proxy(
    sim: &Simulator,
    hold: bool,
    rewrite: Rewrite,
) -> (String, tokio::sync::watch::Sender<bool>, Arc<AtomicUsize>) {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    let (gate, open) = tokio::sync::watch::channel(!hold);
    let held = Arc::new(AtomicUsize::new(0));
    let upstream: SocketAddr = sim.addr();
    let client = reqwest::Client::new();
    let counter = held.clone();
    let app = axum::Router::new().fallback(move |req: Request| {
        let (client, mut open, counter, rewrite) = (
            client.clone(),
            open.clone(),
            counter.clone(),
            rewrite.clone(),
        );
        async move {
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            if path.contains("/api/scan/status/") {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = open.wait_for(|o| *o).await;
            }
            let method = req.method().clone();
            let headers = req.headers().clone();
            let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .unwrap();
            let mut forward = client.request(method, format!("http://{upstream}{path}"));
            for (name, value) in &headers {
                if name != "host" && name != "content-length" {
                    forward = forward.header(name, value);
                }
            }
            let answer = forward.body(body).send().await.unwrap();
            let mut a = Answer {
                status: answer.status().as_u16(),
                headers: answer
                    .headers()
                    .iter()
                    .filter(|(n, _)| {
                        !matches!(
                            n.as_str(),
                            "content-length" | "transfer-encoding" | "connection"
                        )
                    })
                    .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                    .collect(),
                body: answer.bytes().await.unwrap().to_vec(),
            };
            rewrite(&path, &mut a);
            let mut out = Response::builder().status(a.status);
            for (n, v) in &a.headers {
                out = out.header(n.as_str(), v.as_slice());
            }
            out.body(Body::from(a.body)).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), gate, held)
}

fn no_rewrite() -> Rewrite {
    Arc::new(|_, _| {})
}

/// The simulator's generated config with its scans replaced by `scans` and `daemon_extra`
/// added to `[daemon]`; returns (config, store).
fn write_config(
    sim: &Simulator,
    dir: &Path,
    file: &str,
    store: &Path,
    daemon_extra: &str,
    scans: &str,
) -> PathBuf {
    let config = dir.join(file);
    sim.write_config(&config, store).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let head = &text[..text.find("[[scans]]").expect("generated config has scans")];
    let head = head.replace("[daemon]\n", &format!("[daemon]\n{daemon_extra}"));
    std::fs::write(&config, format!("{head}{scans}")).unwrap();
    config
}

fn sim_url_to(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from), "{text}");
    std::fs::write(config, text.replace(from, to)).unwrap();
}

// ---------------------------------------------------------------------------------------
// 1. A webhook push's run row is begun before the run waits for its permits. Meanwhile
//    `scansync sync` of the same scan (another process) begins a run with a higher id, runs
//    it and succeeds. The push's run then reads the vendor (a vendor scan started after the
//    CLI's), i.e. the newest listing, but the store judges staleness by run id: it stores
//    what it finds new as `fixed` (findings the vendor reports right now) and fixes nothing.

struct Daemon {
    handle: DaemonHandle,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    addr: SocketAddr,
}

async fn start_daemon(config: &Path) -> Daemon {
    let (handle, control) = daemon::channel();
    let mut events = handle.subscribe();
    let path = config.to_path_buf();
    let task = tokio::spawn(async move { daemon::run(&path, control).await });
    let addr = loop {
        match tokio::time::timeout(WAIT, events.recv()).await {
            Ok(Ok(DaemonEvent::Listening(addr))) => break addr,
            Ok(Ok(_)) => continue,
            other => panic!("no Listening event: {other:?}"),
        }
    };
    loop {
        match tokio::time::timeout(WAIT, events.recv()).await {
            Ok(Ok(DaemonEvent::Ready)) => break,
            Ok(Ok(_)) => continue,
            other => panic!("no Ready event: {other:?}"),
        }
    }
    Daemon { handle, task, addr }
}

impl Daemon {
    async fn stop(self) {
        self.handle.stop();
        let _ = tokio::time::timeout(WAIT, self.task).await;
    }
}

const GITHUB_SECRET: &str = "gh-secret-attack3-5d0b8f1e2a7c";

fn github_push(branch: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hooks/github_push.json"),
    )
    .unwrap();
    let from = "\"ref\": \"refs/heads/main\"";
    assert!(text.contains(from));
    text.replace(from, &format!("\"ref\": \"refs/heads/{branch}\""))
}

async fn post_github(url: &str, delivery: &str, body: &str) -> serde_json::Value {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(GITHUB_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", delivery)
        .header("X-Hub-Signature-256", format!("sha256={sig}"))
        .header("User-Agent", "GitHub-Hookshot/8c9b3e1")
        .body(body.to_string())
        .send()
        .await
        .expect("the listener answers");
    let status = resp.status().as_u16();
    let json: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{json}");
    json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_run_queued_behind_a_cli_sync_reads_the_newest_listing_and_stores_it_as_such() {
    // 40 findings, 30 % churn per vendor scan: the second vendor scan of project-1 has
    // findings the first lacked, and lacks some it had.
    let sim = Simulator::start(SimOptions {
        projects: 2,
        findings_per_project: 40,
        churn: 30.0,
        scan_seconds: 0.0,
        seed: 11,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("scansync.db");
    std::fs::write(dir.path().join("gh-secret"), format!("{GITHUB_SECRET}\n")).unwrap();
    let gh = "[[scans]]\nname = \"gh\"\ninstance = \"sim-codethreat\"\nbind_to = \"project-1\"\n\
              branch = \"main\"\nschedule = { at = \"2099-01-01T00:00:00Z\" }\n\
              webhook = { platform = \"github\", secret_file = \"gh-secret\", branches = [\"main\"] }\n\n";
    // The daemon: one run per instance at a time, and a scan that holds the CodeThreat
    // instance (its vendor scan is held at the proxy) from start-up.
    let blocker = "[[scans]]\nname = \"blocker\"\ninstance = \"sim-codethreat\"\n\
                   bind_to = \"project-2\"\nschedule = \"now\"\n\n";
    let daemon_config = write_config(
        &sim,
        dir.path(),
        "daemon.toml",
        &store,
        "per_instance_concurrency = 1\n",
        &format!("{gh}{blocker}"),
    );
    let text = std::fs::read_to_string(&daemon_config).unwrap();
    std::fs::write(
        &daemon_config,
        text.replacen(
            "[daemon]",
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[daemon]",
            1,
        ),
    )
    .unwrap();
    let (proxy_base, gate, status_requests) = proxy(&sim, true, no_rewrite()).await;
    sim_url_to(
        &daemon_config,
        &sim.codethreat_url(),
        &format!("{proxy_base}/codethreat"),
    );
    // The CLI talks to the simulator directly (nothing held), on the same store.
    let cli_config = write_config(&sim, dir.path(), "cli.toml", &store, "", gh);

    let d = start_daemon(&daemon_config).await;
    // The blocker's vendor scan is being polled (held): the instance's one permit is taken.
    wait_for("the blocker's status poll", || {
        status_requests.load(Ordering::SeqCst) >= 1
    })
    .await;
    let reply = post_github(
        &format!("http://{}/hooks/gh", d.addr),
        "attack3-1",
        &github_push("main"),
    )
    .await;
    let pushed = reply["run_id"].as_i64().expect("a run id");
    // `scansync sync --scan gh` in another process: nothing holds the scan's lease (the
    // pushed run waits for a permit), so it runs now, to its end.
    let (code, out, err) = scansync(&cli_config, &["sync", "--scan", "gh"]).await;
    assert_eq!(code, 0, "sync: {out}\n{err}");
    let by_cli = scalar(
        &store,
        "SELECT max(id) FROM sync_runs WHERE scan = 'gh' AND trigger = 'cli'",
    );
    assert!(
        by_cli > pushed,
        "the CLI's run {by_cli} began after {pushed}"
    );
    assert_eq!(run_row(&store, by_cli).0, "succeeded");
    // Let the blocker end; the pushed run gets its permit and reads the vendor now.
    gate.send(true).unwrap();
    wait_run_ended(&store, pushed).await;
    // Its turn came after the CLI's run began: it goes on as a newer run (run ids order
    // listings), and its own row says which.
    let (state, error, ..) = run_row(&store, pushed);
    assert_eq!(state, "interrupted", "{error:?}");
    let next: i64 = error
        .as_deref()
        .and_then(|e| e.split("went on as run ").nth(1))
        .and_then(|t| t.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the row names the run it went on as: {error:?}"));
    assert!(next > by_cli, "run {next} is newer than the CLI's {by_cli}");
    wait_run_ended(&store, next).await;
    let pushed = next;
    let vendor_scans = sim.codethreat_scans();
    let (state, error, fixed, missing, seen) = run_row(&store, pushed);
    assert_eq!(state, "succeeded", "{error:?}");
    // What the pushed run read is the newest listing of project-1 (its vendor scan was
    // started after the CLI's): every finding it stored is listed `Open` right now.
    let falsely_fixed = scalar(
        &store,
        &format!(
            "SELECT count(*) FROM findings f JOIN scans s ON s.id = f.scan_id
             WHERE s.name = 'gh' AND f.last_run_id = {pushed} AND f.state = 'fixed'"
        ),
    );
    // The simulator's own data: what project-1's second vendor scan (generation 1, the
    // pushed run's) lists, every finding `Open`.
    let newest: std::collections::BTreeSet<String> =
        scansync::sim::data::project_findings(11, 1, 40, 30.0, 1)
            .map(|f| f.id)
            .collect();
    let fixed_ids: Vec<String> = {
        let c = db(&store);
        let mut stmt = c
            .prepare(
                "SELECT f.vendor_id FROM findings f JOIN scans s ON s.id = f.scan_id
                 WHERE s.name = 'gh' AND f.state = 'fixed'",
            )
            .unwrap();
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        ids
    };
    let listed_now_but_fixed: Vec<&String> =
        fixed_ids.iter().filter(|id| newest.contains(*id)).collect();
    assert!(
        listed_now_but_fixed.is_empty(),
        "the vendor's newest listing reports {listed_now_but_fixed:?} open, the store has \
         them fixed"
    );
    assert_eq!(
        falsely_fixed,
        0,
        "run {pushed} (seen {seen}, fixed {fixed}, missing {missing}) read the newest listing \
         (vendor scans in start order: {:?}) yet stored {falsely_fixed} findings it lists as \
         open as `fixed`",
        vendor_scans
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
    );
    d.stop().await;
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 2. CodeThreat: a first issues page that is short (here half of the 500 asked for) while
//    `x-ct-pager` announces further pages is "a short page before the last announced page".
//    `IssueListing::first` takes the short first page's size as the server's page size, so
//    the full further pages never look wrong: the run succeeds and the issues the first
//    page dropped are fixed (250 of 1,200 is under the guard).

const FINDINGS: u32 = 1_200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codethreat_short_first_page_under_a_pager_fails_the_run_and_fixes_nothing() {
    let sim = Simulator::start(SimOptions {
        projects: 1,
        findings_per_project: FINDINGS,
        scan_seconds: 0.0,
        seed: 7,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let lie = Arc::new(AtomicBool::new(false));
    let rewrite: Rewrite = {
        let lie = lie.clone();
        Arc::new(move |path: &str, a: &mut Answer| {
            let first_issues_page = path.contains("/api/scanlog/issues") && !path.contains("pid=");
            if !(first_issues_page && lie.load(Ordering::SeqCst)) {
                return;
            }
            let mut items: Vec<serde_json::Value> = serde_json::from_slice(&a.body).unwrap();
            assert_eq!(items.len(), 500, "the honest first page is full");
            assert!(a.headers.iter().any(|(n, _)| n == "x-ct-pager"));
            items.truncate(250);
            a.body = serde_json::to_vec(&items).unwrap();
        })
    };
    let (proxy_base, _gate, _) = proxy(&sim, false, rewrite).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("scansync.db");
    let config = write_config(
        &sim,
        dir.path(),
        "config.toml",
        &store,
        "",
        "[[scans]]\nname = \"ct\"\ninstance = \"sim-codethreat\"\nbind_to = \"project-1\"\n\
         schedule = \"now\"\n",
    );
    sim_url_to(
        &config,
        &sim.codethreat_url(),
        &format!("{proxy_base}/codethreat"),
    );
    let (code, out, err) = scansync(&config, &["sync"]).await;
    assert_eq!(code, 0, "honest sync: {out}\n{err}");
    assert_eq!(
        scalar(
            &store,
            "SELECT count(*) FROM findings WHERE state != 'fixed'"
        ),
        FINDINGS as i64
    );
    lie.store(true, Ordering::SeqCst);
    let (_code, out, err) = scansync(&config, &["sync"]).await;
    let last = scalar(&store, "SELECT max(id) FROM sync_runs");
    let (state, error, fixed, missing, seen) = run_row(&store, last);
    assert_eq!(
        (state.as_str(), fixed),
        ("failed", 0),
        "a first page of 250 of the 500 asked for, with 2 further pages announced, is an \
         incomplete listing; run {last}: seen {seen}, fixed {fixed}, missing {missing}, \
         error {error:?}\n{out}\n{err}"
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT count(*) FROM findings WHERE state = 'fixed'"
        ),
        0,
        "nothing the vendor still lists may be fixed"
    );
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 3. Salt Security: a gaps page that holds fewer items than `endOffset` moves on by (100
//    asked, 50 served, endOffset = offset + 100) skips gaps no page ever showed, exactly
//    like an `endOffset` past `offset + limit`, which the connector does refuse. The run
//    succeeds and the 50 skipped gaps are fixed (50 of 1,200 is under the guard).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salt_page_shorter_than_its_end_offset_advance_fails_the_run_and_fixes_nothing() {
    let sim = Simulator::start(SimOptions {
        projects: 1,
        findings_per_project: FINDINGS,
        scan_seconds: 0.0,
        seed: 7,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let lie = Arc::new(AtomicBool::new(false));
    let rewrite: Rewrite = {
        let lie = lie.clone();
        Arc::new(move |path: &str, a: &mut Answer| {
            let third_page = path.contains("/posture/gaps") && path.contains("offset=200");
            if !(third_page && lie.load(Ordering::SeqCst)) {
                return;
            }
            let mut env: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
            let items = env["response"].as_array_mut().unwrap();
            assert_eq!(items.len(), 100, "the honest page is full");
            items.truncate(50);
            assert_eq!(env["endOffset"].as_u64(), Some(300), "{env}");
            a.body = serde_json::to_vec(&env).unwrap();
        })
    };
    let (proxy_base, _gate, _) = proxy(&sim, false, rewrite).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("scansync.db");
    let config = write_config(
        &sim,
        dir.path(),
        "config.toml",
        &store,
        "",
        "[[scans]]\nname = \"salt\"\ninstance = \"sim-salt\"\nbind_to = \"project-1\"\n\
         schedule = \"now\"\n",
    );
    sim_url_to(&config, &sim.salt_url(), &format!("{proxy_base}/salt"));
    let (code, out, err) = scansync(&config, &["sync"]).await;
    assert_eq!(code, 0, "honest sync: {out}\n{err}");
    let honest = scalar(
        &store,
        "SELECT count(*) FROM findings WHERE state != 'fixed'",
    );
    assert!(honest > 300, "{honest} gaps stored");
    lie.store(true, Ordering::SeqCst);
    let (_code, out, err) = scansync(&config, &["sync"]).await;
    let last = scalar(&store, "SELECT max(id) FROM sync_runs");
    let (state, error, fixed, missing, seen) = run_row(&store, last);
    assert_eq!(
        (state.as_str(), fixed),
        ("failed", 0),
        "the page at offset 200 served 50 gaps but endOffset moved on by 100: 50 gaps were \
         never served; run {last}: seen {seen}, fixed {fixed}, missing {missing}, error \
         {error:?}\n{out}\n{err}"
    );
    sim.shutdown().await;
}
