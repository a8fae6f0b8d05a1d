//! `metrics::render` after real syncs against the in-process simulator, read back with a
//! Prometheus text-format parser: the run and request counters move by exactly what
//! happened, the findings gauges equal the store's own counts, and the text passes
//! `promtool check metrics` where promtool is installed (Debian package `prometheus`).
//!
//! The registry is process-wide and tests in this file run in parallel, so each test gives
//! its instances and scans names of its own and reads only those series.

mod common;

use common::{counter, gauge, promtool_check, value};
use prometheus_parse::Scrape;
use rusqlite::{Connection, OpenFlags};
use scansync::config::Config;
use scansync::metrics;
use scansync::sim::{Fault, FaultKind, SimOptions, Simulator};
use scansync::sync::{run_scan, RunOptions, SyncContext};
use std::collections::BTreeMap;
use std::path::PathBuf;

const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];
const STATES: [&str; 6] = [
    "new",
    "open",
    "fixed",
    "reopened",
    "false_positive",
    "accepted",
];

struct Setup {
    sim: Simulator,
    _dir: tempfile::TempDir,
    store: PathBuf,
    config: Config,
    ctx: SyncContext,
    _stop: tokio::sync::watch::Sender<bool>,
}

/// A simulator and a context whose instances are `<tag>-ct` / `<tag>-salt` and whose scans
/// are `<tag>-ct-scan` / `<tag>-salt-scan`.
async fn setup(tag: &str, faults: Vec<Fault>) -> Setup {
    let sim = Simulator::start(SimOptions {
        projects: 2,
        findings_per_project: 40,
        scan_seconds: 0.0,
        faults,
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let store = dir.path().join("scansync.db");
    sim.write_config(&path, &store).unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("sim-codethreat", &format!("{tag}-ct"))
        .replace("sim-salt", &format!("{tag}-salt"))
        .replace("\"codethreat-project-1\"", &format!("\"{tag}-ct-scan\""))
        .replace("\"salt-project-1\"", &format!("\"{tag}-salt-scan\""));
    std::fs::write(&path, text).unwrap();
    let config =
        Config::load(&path, scansync::vendors::REGISTRY).expect("the simulator's config is valid");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let ctx = SyncContext::new(&config, stop_rx).expect("store opens");
    Setup {
        sim,
        _dir: dir,
        store,
        config,
        ctx,
        _stop: stop,
    }
}

impl Setup {
    async fn sync(&self, scan: &str) {
        let scan = self
            .config
            .scans
            .iter()
            .find(|s| s.name == scan)
            .expect("configured scan");
        let summary = run_scan(
            &self.ctx,
            scan,
            RunOptions {
                trigger: "test".into(),
                ..RunOptions::default()
            },
        )
        .await
        .expect("the run is recorded");
        assert_eq!(summary.state.as_str(), "succeeded", "{:?}", summary.error);
    }

    fn db(&self) -> Connection {
        Connection::open_with_flags(&self.store, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
    }
}

/// Renders and parses (see [`common::parse_exposition`]).
async fn scrape(ctx: &SyncContext) -> (String, Scrape) {
    let text = metrics::render(&ctx.reader).await.expect("render");
    let parsed = common::parse_exposition(&text);
    (text, parsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_after_a_sync_and_findings_gauges_match_the_store() {
    let s = setup("m1", Vec::new()).await;
    let (before_text, before) = scrape(&s.ctx).await;
    promtool_check(&before_text);
    let runs_ok = |scan: &'static str| [("scan", scan), ("outcome", "succeeded")];
    assert_eq!(
        counter(&before, "scansync_runs_total", &runs_ok("m1-ct-scan")),
        0.0
    );

    s.sync("m1-ct-scan").await;
    s.sync("m1-salt-scan").await;
    let (text, after) = scrape(&s.ctx).await;
    promtool_check(&text);

    for scan in ["m1-ct-scan", "m1-salt-scan"] {
        assert_eq!(
            counter(&after, "scansync_runs_total", &runs_ok(scan)),
            1.0,
            "{text}"
        );
        assert_eq!(
            value(
                &after,
                "scansync_run_duration_seconds_count",
                &[("scan", scan)]
            ),
            Some(1.0),
            "{text}"
        );
    }

    // Every request the simulator saw came from this test's two instances, all answered 2xx.
    let seen = s.sim.requests();
    for (instance, vendor) in [("m1-ct", "codethreat"), ("m1-salt", "salt")] {
        let served = seen
            .iter()
            .filter(|r| serde_json::to_value(r.vendor).unwrap() == vendor)
            .count() as f64;
        assert!(served > 0.0);
        let labels = [("instance", instance), ("status_class", "2xx")];
        assert_eq!(
            counter(&after, "scansync_vendor_requests_total", &labels),
            served,
            "{instance}: {text}"
        );
        assert_eq!(
            value(
                &after,
                "scansync_vendor_request_duration_seconds_count",
                &[("instance", instance)]
            ),
            Some(served),
            "{text}"
        );
        assert_eq!(
            counter(
                &after,
                "scansync_vendor_retries_total",
                &[("instance", instance)]
            ),
            0.0
        );
    }

    // The findings gauges are the store's own GROUP BY, zeros included.
    let db = s.db();
    let mut stored: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    let mut stmt = db
        .prepare(
            "SELECT s.name, f.state, f.severity, count(*) FROM findings f \
             JOIN scans s ON s.id = f.scan_id GROUP BY 1, 2, 3",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?),
                r.get::<_, i64>(3)? as f64,
            ))
        })
        .unwrap();
    for row in rows {
        let (key, n) = row.unwrap();
        stored.insert(key, n);
    }
    assert!(
        stored.values().sum::<f64>() > 0.0,
        "the sync stored findings"
    );
    for scan in ["m1-ct-scan", "m1-salt-scan"] {
        for state in STATES {
            for severity in SEVERITIES {
                let key = (scan.to_string(), state.to_string(), severity.to_string());
                let labels = [("scan", scan), ("state", state), ("severity", severity)];
                assert_eq!(
                    value(&after, "scansync_findings", &labels),
                    Some(stored.get(&key).copied().unwrap_or(0.0)),
                    "{labels:?}"
                );
            }
        }
    }

    // The last successful sync is the run's end as the store recorded it.
    for scan in ["m1-ct-scan", "m1-salt-scan"] {
        let finished: String = db
            .query_row(
                "SELECT finished_at FROM sync_runs WHERE scan = ?1 AND state = 'succeeded'",
                [scan],
                |r| r.get(0),
            )
            .unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(&finished).unwrap();
        assert_eq!(
            value(
                &after,
                "scansync_last_successful_sync_timestamp_seconds",
                &[("scan", scan)]
            ),
            Some(at.timestamp_millis() as f64 / 1000.0)
        );
    }

    // A reload rebuilds the context; the counters live on and the store is still read.
    let reloaded = s.ctx.with_config(&s.config).unwrap();
    let (_, again) = scrape(&reloaded).await;
    assert_eq!(
        counter(&again, "scansync_runs_total", &runs_ok("m1-ct-scan")),
        1.0
    );
    assert_eq!(
        value(
            &again,
            "scansync_findings",
            &[
                ("scan", "m1-ct-scan"),
                ("state", "new"),
                ("severity", "high")
            ]
        ),
        value(
            &after,
            "scansync_findings",
            &[
                ("scan", "m1-ct-scan"),
                ("state", "new"),
                ("severity", "high")
            ]
        )
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_5xx_counts_as_one_5xx_attempt_and_one_retry() {
    // The simulator's first vendor request answers 500; the client retries it.
    let s = setup("m2", vec![Fault::first(FaultKind::Status500, 1)]).await;
    s.sync("m2-ct-scan").await;
    let (text, after) = scrape(&s.ctx).await;
    promtool_check(&text);
    let instance = [("instance", "m2-ct")];
    assert_eq!(
        counter(&after, "scansync_vendor_retries_total", &instance),
        1.0,
        "{text}"
    );
    assert_eq!(
        counter(
            &after,
            "scansync_vendor_requests_total",
            &[("instance", "m2-ct"), ("status_class", "5xx")]
        ),
        1.0,
        "{text}"
    );
    let ok = counter(
        &after,
        "scansync_vendor_requests_total",
        &[("instance", "m2-ct"), ("status_class", "2xx")],
    );
    assert_eq!(ok + 1.0, s.sim.requests().len() as f64, "{text}");
    assert_eq!(
        counter(
            &after,
            "scansync_runs_total",
            &[("scan", "m2-ct-scan"), ("outcome", "succeeded")]
        ),
        1.0
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_recorders_show_up_as_typed_counters() {
    let s = setup("m3", Vec::new()).await;
    metrics::global().webhook_trigger("m3-ct-scan", "started");
    metrics::global().webhook_trigger("m3-ct-scan", "duplicate");
    metrics::global().webhook_delivery("m3-hook", "delivered");
    let (text, after) = scrape(&s.ctx).await;
    promtool_check(&text);
    assert_eq!(
        counter(
            &after,
            "scansync_webhook_triggers_total",
            &[("scan", "m3-ct-scan"), ("result", "started")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &after,
            "scansync_webhook_deliveries_total",
            &[("webhook", "m3-hook"), ("outcome", "delivered")]
        ),
        1.0
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_part_of_a_scrape_is_read_once_per_period_and_again_after_a_run_ends() {
    let s = setup("m4", Vec::new()).await;
    s.sync("m4-ct-scan").await;
    // Fixed findings of the scan, all severities.
    let fixed_of = |text: &str| -> f64 {
        let scrape = common::parse_exposition(text);
        ["critical", "high", "medium", "low", "info"]
            .iter()
            .filter_map(|sev| {
                gauge(
                    &scrape,
                    "scansync_findings",
                    &[
                        ("scan", "m4-ct-scan"),
                        ("state", "fixed"),
                        ("severity", sev),
                    ],
                )
            })
            .sum()
    };
    // Within the period, scrapes are served from the one read. The other tests of this
    // binary end runs in this process too (each makes the next scrape read again), and a
    // busy machine can outlast the period: an attempt counts only when neither happened.
    let mut attempts = 0;
    let cache = loop {
        attempts += 1;
        assert!(attempts <= 50, "no attempt free of other runs' ends");
        let set = |state: &str| {
            Connection::open(&s.store)
                .unwrap()
                .execute("UPDATE findings SET state = ?1", [state])
                .unwrap();
        };
        set("open");
        let (ended, started) = (metrics::global().runs_ended(), std::time::Instant::now());
        let cache = metrics::SnapshotCache::default();
        let first = cache
            .render(&s.ctx.reader, |_| String::new())
            .await
            .unwrap();
        assert_eq!(fixed_of(&first), 0.0);
        // Another process fixes every finding behind the daemon's back.
        set("fixed");
        let again = cache
            .render(&s.ctx.reader, |_| String::new())
            .await
            .unwrap();
        if metrics::global().runs_ended() != ended || started.elapsed() >= metrics::SNAPSHOT_EVERY {
            continue;
        }
        assert_eq!(fixed_of(&again), 0.0, "served from the snapshot");
        break cache;
    };
    // A run of this process ending makes the next scrape read the store again.
    metrics::global().run_finished("m4-ct-scan", "succeeded", std::time::Duration::ZERO);
    let after = cache
        .render(&s.ctx.reader, |_| String::new())
        .await
        .unwrap();
    assert!(fixed_of(&after) > 0.0, "{after}");
}
