//! The listener's tests and its attacks share this: a simulator, a config with `[server]`
//! on a loopback port and push-hook scans, the daemon in process, pushes signed as each
//! platform signs them, and the runs they started, read from the store.

use hmac::{Hmac, Mac};
use rusqlite::Connection;
use scansync::daemon::{self, DaemonEvent, DaemonHandle};
use scansync::sim::{SimOptions, Simulator};
use serde_json::Value;
use sha2::Sha256;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The longest any wait here may take before the test fails: generous for a loaded machine.
pub const WAIT: Duration = Duration::from_secs(60);
pub const GITHUB_SECRET: &str = "gh-secret-5d0b8f1e2a7c4d93";
pub const BITBUCKET_SECRET: &str = "bb-secret-77a01c9e4f2d6b38";
/// A Standard Webhooks signing token, which GitLab also accepts as a plain secret token.
pub const GITLAB_SECRET: &str = "whsec_c2NhbnN5bmMtdGVzdC1zaWduaW5nLWtleS0zMmI=";

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/hooks")
            .join(name),
    )
    .unwrap()
}

/// Hex HMAC-SHA256, computed here, independently of the listener's own check.
pub fn hex_hmac(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub async fn sim(scan_seconds: f64) -> Simulator {
    Simulator::start(SimOptions {
        projects: 2,
        findings_per_project: 10,
        scan_seconds,
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts")
}

/// A CodeThreat scan on `main` with a webhook (and a schedule that does not fire in a
/// test); the secret goes to a file beside the config.
pub fn hook_scan(dir: &Path, name: &str, platform: &str, secret: &str) -> String {
    let file = format!("{name}-secret");
    std::fs::write(dir.join(&file), format!("{secret}\n")).unwrap();
    format!(
        "[[scans]]\nname = \"{name}\"\ninstance = \"sim-codethreat\"\nbind_to = \"project-1\"\n\
         branch = \"main\"\nschedule = {{ at = \"2099-01-01T00:00:00Z\" }}\n\
         webhook = {{ platform = \"{platform}\", secret_file = \"{file}\", branches = [\"main\", \"release/*\"] }}\n\n"
    )
}

/// A config pointing at `sim`, with `store_extra` appended to `[store]`, `[server]` on a
/// loopback port chosen by the system (plus `server_extra`) and `scans`.
pub fn write_config(
    sim: &Simulator,
    dir: &Path,
    store_extra: &str,
    server_extra: &str,
    scans: &str,
) -> (PathBuf, PathBuf) {
    let config = dir.join("config.toml");
    let store = dir.join("scansync.db");
    sim.write_config(&config, &store).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let head = &text[..text.find("[[scans]]").expect("generated config has scans")];
    let head = if store_extra.is_empty() {
        head.to_string()
    } else {
        let at = head.find("[store]").expect("generated config has [store]");
        let line_end = at + head[at..].find('\n').unwrap() + 1;
        let path_end = line_end + head[line_end..].find('\n').unwrap() + 1;
        format!("{}{store_extra}\n{}", &head[..path_end], &head[path_end..])
    };
    std::fs::write(
        &config,
        format!("{head}[server]\nlisten = \"127.0.0.1:0\"\n{server_extra}\n{scans}"),
    )
    .unwrap();
    (config, store)
}

pub struct Daemon {
    pub handle: DaemonHandle,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub addr: SocketAddr,
    pub events: tokio::sync::broadcast::Receiver<DaemonEvent>,
}

/// Starts the daemon in process and waits until its listener is bound.
pub async fn start(config: &Path) -> Daemon {
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
    Daemon {
        handle,
        task,
        addr,
        events,
    }
}

impl Daemon {
    pub async fn ready(&mut self) {
        loop {
            match tokio::time::timeout(WAIT, self.events.recv()).await {
                Ok(Ok(DaemonEvent::Ready)) => return,
                Ok(Ok(_)) => continue,
                other => panic!("no Ready event: {other:?}"),
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(self) {
        self.handle.stop();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("daemon stops")
            .expect("daemon task does not panic")
            .expect("daemon ends cleanly");
    }
}

pub fn db(store: &Path) -> Connection {
    let c = Connection::open(store).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

/// `(id, scan, branch, trigger, state)` of every run started by a webhook, oldest first.
pub fn webhook_runs(store: &Path) -> Vec<(i64, String, Option<String>, String, String)> {
    let c = db(store);
    let mut stmt = c
        .prepare(
            "SELECT id, scan, branch, trigger, state FROM sync_runs
             WHERE trigger = 'webhook' ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Waits until run `id` has ended and returns its `(scan, branch, trigger, state)`.
pub async fn finished_run(store: &Path, id: i64) -> (String, Option<String>, String, String) {
    let start = Instant::now();
    loop {
        if let Some(r) = webhook_runs(store).into_iter().find(|r| r.0 == id) {
            if r.4 != "running" {
                return (r.1, r.2, r.3, r.4);
            }
        }
        assert!(start.elapsed() < WAIT, "run {id} did not end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct Reply {
    pub status: u16,
    pub json: Value,
}

pub async fn post(url: &str, headers: &[(&str, String)], body: impl Into<reqwest::Body>) -> Reply {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.body(body).send().await.expect("the listener answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    Reply {
        status,
        json: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

pub fn github_headers(event: &str, delivery: &str, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("X-GitHub-Event", event.to_string()),
        ("X-GitHub-Delivery", delivery.to_string()),
        (
            "X-Hub-Signature-256",
            format!(
                "sha256={}",
                hex_hmac(GITHUB_SECRET.as_bytes(), body.as_bytes())
            ),
        ),
        ("User-Agent", "GitHub-Hookshot/8c9b3e1".to_string()),
    ]
}

/// A simulator and, ready, a daemon whose config has one push-hook scan `name` on `platform`
/// signed with `secret` (see [`write_config`] for the extras); with the folder that holds the
/// config, and the store's path.
pub async fn hook_daemon(
    name: &str,
    platform: &str,
    secret: &str,
    store_extra: &str,
    server_extra: &str,
) -> (Simulator, tempfile::TempDir, Daemon, PathBuf) {
    let sim = sim(0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let scans = hook_scan(dir.path(), name, platform, secret);
    let (config, store) = write_config(&sim, dir.path(), store_extra, server_extra, &scans);
    let mut d = start(&config).await;
    d.ready().await;
    (sim, dir, d, store)
}
