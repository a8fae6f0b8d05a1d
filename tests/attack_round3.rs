//! Adversarial end-to-end tests (branch `attack4`, third review round): each shows a way the
//! promise of issue #12 ("a finding is `fixed` only when the vendor no longer reports it; no
//! lost notification, under overlap, lies and stops") still breaks, with the real `scansync`
//! binary (or the daemon in process) against the simulator. Each test FAILS on the code it
//! was written against; the assertion message says what should have happened.

use rusqlite::{Connection, OpenFlags};
use scansync::daemon::{self, DaemonEvent, DaemonHandle};
use scansync::sim::{SimOptions, Simulator};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest any wait here may take before the test fails: generous for a loaded machine.
const WAIT: Duration = Duration::from_secs(90);

fn db(store: &Path) -> Connection {
    let c = Connection::open_with_flags(store, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

fn db_rw(store: &Path) -> Connection {
    let c = Connection::open(store).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

fn scalar(store: &Path, sql: &str) -> i64 {
    db(store).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// `(state, error, fixed, missing, seen, new)` of run `id`.
fn run_row(store: &Path, id: i64) -> (String, Option<String>, i64, i64, i64, i64) {
    db(store)
        .query_row(
            "SELECT state, error, fixed, missing, seen, new FROM sync_runs WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .unwrap()
}

/// Waits (on the store, not on a clock) until run `id` is no longer `running`.
async fn wait_run_ended(store: &Path, id: i64) {
    let start = Instant::now();
    loop {
        let state: Option<String> = db(store)
            .query_row("SELECT state FROM sync_runs WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .ok();
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

fn command(config: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_scansync"));
    cmd.arg("--config").arg(config).args(args);
    cmd.env_remove("RUST_LOG");
    cmd
}

/// `scansync ARGS` with `config`; `(exit code, stdout, stderr)`.
async fn scansync(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = tokio::time::timeout(WAIT, command(config, args).output())
        .await
        .expect("scansync ends")
        .expect("scansync runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The simulator's generated config with its scans replaced by `scans`; returns the config.
fn write_config(sim: &Simulator, dir: &Path, file: &str, store: &Path, scans: &str) -> PathBuf {
    let config = dir.join(file);
    sim.write_config(&config, store).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let head = &text[..text.find("[[scans]]").expect("generated config has scans")];
    std::fs::write(&config, format!("{head}{scans}")).unwrap();
    config
}

/// A loopback proxy in front of the simulator that forwards every request, except that
/// requests whose path and query contain `hold` are counted and never answered. Returns
/// the proxy's base URL (`http://addr`) and the count of held requests.
async fn holding_proxy(sim: &Simulator, hold: &'static str) -> (String, Arc<AtomicUsize>) {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    let held = Arc::new(AtomicUsize::new(0));
    let upstream: SocketAddr = sim.addr();
    let client = reqwest::Client::new();
    let counter = held.clone();
    let app = axum::Router::new().fallback(move |req: Request| {
        let (client, counter) = (client.clone(), counter.clone());
        async move {
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            if path.contains(hold) {
                counter.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
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
            let mut out = Response::builder().status(answer.status().as_u16());
            for (n, v) in answer.headers() {
                if !matches!(
                    n.as_str(),
                    "content-length" | "transfer-encoding" | "connection"
                ) {
                    out = out.header(n.as_str(), v.as_bytes());
                }
            }
            out.body(Body::from(answer.bytes().await.unwrap())).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), held)
}

struct Daemon {
    handle: DaemonHandle,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// The daemon in process, once it is `Ready` (start-up adoption has been dispatched).
async fn start_daemon(config: &Path) -> Daemon {
    let (handle, control) = daemon::channel();
    let mut events = handle.subscribe();
    let path = config.to_path_buf();
    let task = tokio::spawn(async move { daemon::run(&path, control).await });
    loop {
        match tokio::time::timeout(WAIT, events.recv()).await {
            Ok(Ok(DaemonEvent::Ready)) => break,
            Ok(Ok(_)) => continue,
            other => panic!("no Ready event: {other:?}"),
        }
    }
    Daemon { handle, task }
}

impl Daemon {
    async fn stop(self) {
        self.handle.stop();
        let _ = tokio::time::timeout(WAIT, self.task).await;
    }
}

// ---------------------------------------------------------------------------------------
// 1. A run of a scan on another branch is stored as `name@branch`, and a configured scan's
//    name may itself contain `@`. A configured scan `web@dev` (project-2) and `scansync scan
//    -b dev` of the scan `web` (project-1) are then one store scan: one lifecycle fed two
//    different projects' listings. Each complete listing of one project finds the other
//    project's findings absent: the guard holds them `missing` once (every finding absent),
//    but the next run of the other project finds only half absent and fixes them, although
//    the vendor reports every one of them.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_scan_named_like_a_branch_run_does_not_share_its_lifecycle() {
    let sim = Simulator::start(SimOptions {
        projects: 2,
        findings_per_project: 30,
        scan_seconds: 0.0,
        seed: 41,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("scansync.db");
    let scans = "[[scans]]\nname = \"web\"\ninstance = \"sim-codethreat\"\n\
                 bind_to = \"project-1\"\nbranch = \"main\"\n\
                 schedule = { at = \"2099-01-01T00:00:00Z\" }\n\n\
                 [[scans]]\nname = \"web@dev\"\ninstance = \"sim-codethreat\"\n\
                 bind_to = \"project-2\"\nschedule = { at = \"2099-01-01T00:00:00Z\" }\n";
    let config = write_config(&sim, dir.path(), "scansync.toml", &store, scans);

    // A configured name with an @ could be another scan's branch scope (`web` on branch
    // `dev` is stored as `web@dev`): refused, before any run could mix the two.
    let (code, out, err) = scansync(&config, &["sync", "--scan", "web@dev"]).await;
    assert_eq!(code, 78, "sync web@dev: {out}\n{err}");
    assert!(err.contains("scans[1].name: \"web@dev\" has an @"), "{err}");
    assert!(!store.exists() || scalar(&store, "SELECT count(*) FROM sync_runs") == 0);
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 2. A run of a passive vendor (Salt Security: no vendor scan, the listing is read as it is
//    now) killed mid-listing is left `running`. `scansync sync` of the scan runs meanwhile
//    (a newer run id) and succeeds. A daemon then adopts the old run: the adopted run reads
//    Salt's listing NOW, the newest there is, but keeps its old run id, so the store takes
//    it for an older listing ("a newer run succeeded first") and stores every finding that
//    is new in it as already `fixed`, although the vendor reports it right now.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_salt_run_reads_the_listing_of_now_and_stores_it_as_such() {
    let sim = Simulator::start(SimOptions {
        projects: 1,
        findings_per_project: 40,
        churn: 60.0,
        seed: 43,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("scansync.db");
    let scans = "[[scans]]\nname = \"salt\"\ninstance = \"sim-salt\"\nbind_to = \"project-1\"\n\
                 schedule = { at = \"2099-01-01T00:00:00Z\" }\n";
    let config = write_config(&sim, dir.path(), "scansync.toml", &store, scans);
    // The first process reads Salt through a proxy that never answers the gaps listing.
    let (proxy_base, held) = holding_proxy(&sim, "posture").await;
    let held_config = dir.path().join("held.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&sim.salt_url()));
    std::fs::write(
        &held_config,
        text.replace(&sim.salt_url(), &format!("{proxy_base}/salt")),
    )
    .unwrap();

    let mut first = command(&held_config, &["sync", "--scan", "salt"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for("the first run's gaps request", || {
        held.load(Ordering::SeqCst) >= 1
    })
    .await;
    let left = scalar(&store, "SELECT max(id) FROM sync_runs WHERE scan = 'salt'");
    // kill -9; its heartbeat and lease are then as good as expired (written so, rather than
    // waited for).
    first.kill().await.unwrap();
    {
        let c = db_rw(&store);
        c.execute(
            "UPDATE owners SET expires_at = '2000-01-01T00:00:00.000Z'",
            [],
        )
        .unwrap();
        c.execute(
            "UPDATE scan_leases SET expires_at = '2000-01-01T00:00:00.000Z'",
            [],
        )
        .unwrap();
    }
    assert_eq!(run_row(&store, left).0, "running");

    // `scansync sync` of the scan (another process, straight to the simulator): generation 1.
    sim.advance();
    let (code, out, err) = scansync(&config, &["sync", "--scan", "salt"]).await;
    assert_eq!(code, 0, "sync: {out}\n{err}");
    let by_cli = scalar(&store, "SELECT max(id) FROM sync_runs WHERE scan = 'salt'");
    assert!(by_cli > left);
    assert_eq!(run_row(&store, by_cli).0, "succeeded");

    // Salt's data moves on (60 % churn), then a daemon starts and adopts the left run.
    sim.advance();
    let d = start_daemon(&config).await;
    wait_run_ended(&store, left).await;
    let (state, error, fixed, missing, seen, new) = run_row(&store, left);
    d.stop().await;
    // Nothing to poll (Salt has no vendor scan): the row ends, its pages kept; the listing
    // of now is read by a new run, never under the old id.
    assert_eq!(state, "interrupted", "{error:?}");
    assert!(
        error
            .as_deref()
            .unwrap_or("")
            .contains("no vendor scan to poll"),
        "{error:?}"
    );
    let created_fixed = scalar(
        &store,
        &format!(
            "SELECT count(*) FROM finding_events
             WHERE run_id = {left} AND kind = 'created' AND new_value = 'fixed'"
        ),
    );
    let open_listed_fixed = scalar(
        &store,
        &format!(
            "SELECT count(*) FROM findings
             WHERE last_run_id = {left} AND state = 'fixed' AND vendor_verdict IS NOT 'resolved'"
        ),
    );
    assert_eq!(
        (created_fixed, open_listed_fixed),
        (0, 0),
        "adopted run {left} read Salt's listing of now (generation {}, seen {seen}, new {new}, \
         fixed {fixed}, missing {missing}), newer than run {by_cli}'s ({:?}), yet stored \
         {created_fixed} findings the vendor reports right now as already `fixed` (and \
         {open_listed_fixed} listed findings are `fixed`)",
        sim.salt_generation(),
        run_row(&store, by_cli)
    );
    sim.shutdown().await;
}
