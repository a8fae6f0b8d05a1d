//! Several `scansync run` processes on one PostgreSQL store (issue #15): each due run of a
//! scan runs once across all of them, no finding is stored twice or fixed wrongly, and the
//! runs of a node that dies (SIGKILL) are finished by the others once its lease expires.
//!
//! Needs a PostgreSQL server: `SCANSYNC_TEST_POSTGRES` (a url whose user may create
//! databases). Without it the tests say SKIPPED, or fail under CI (`tests/common`).

mod common;

use common::pg::{ct_scans, sim_config, Database, Node};

use scansync::sim::{SimOptions, Simulator};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How long a lease lives here (the daemons read `SCANSYNC_LEASE_TTL_MS`): short, so a killed
/// node's runs are taken over within the test's patience.
const LEASE_TTL: Duration = Duration::from_secs(4);

/// A simulator with `scans` projects of `findings` each, and three nodes (`node-a`…) on
/// `db` with `scans` CodeThreat scans on `schedule`.
async fn three_nodes(
    db: &Database,
    scans: usize,
    findings: u32,
    scan_seconds: f64,
    schedule: &str,
    lease_ttl: Option<Duration>,
) -> (Simulator, tempfile::TempDir, Vec<Node>) {
    let sim = Simulator::start(SimOptions {
        projects: scans as u32,
        findings_per_project: findings,
        scan_seconds,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = sim_config(&sim, dir.path(), &db.url, &ct_scans(scans, schedule));
    let nodes = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|n| Node::start(dir.path(), n, &base, &db.password, lease_ttl))
        .collect();
    (sim, dir, nodes)
}

fn scan_starts(sim: &Simulator) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/api/scan/start"))
        .count()
}

fn millis(stamp: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(stamp)
        .unwrap()
        .timestamp_millis()
}

/// No finding stored twice, none fixed: the simulator's findings never change here.
fn assert_findings_whole(db: &Database, scans: usize, per_scan: i64) {
    let rows = db.rows(
        "SELECT s.name, count(*), count(DISTINCT f.fingerprint),
                sum(CASE WHEN f.state = 'fixed' OR f.state = 'missing' THEN 1 ELSE 0 END)
         FROM findings f JOIN scans s ON s.id = f.scan_id GROUP BY s.name ORDER BY s.name",
    );
    assert_eq!(rows.len(), scans, "every scan has findings: {rows:?}");
    for r in &rows {
        let n = |i: usize| r[i].as_deref().unwrap().parse::<i64>().unwrap();
        assert_eq!((n(1), n(2), n(3)), (per_scan, per_scan, 0), "{r:?}");
    }
    assert_eq!(
        db.count("SELECT count(*) FROM finding_events WHERE kind = 'fixed' OR kind = 'missing'"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_run_each_due_time_of_thirty_scans_once() {
    let Some(db) = Database::fresh("scansync_three") else {
        return;
    };
    const SCANS: usize = 30;
    const EVERY: i64 = 20;
    const FINDINGS: u32 = 15;
    let schedule = format!("{{ every = \"{EVERY}s\" }}");
    let (sim, _dir, nodes) = three_nodes(&db, SCANS, FINDINGS, 1.0, &schedule, None).await;
    let ran_for = Duration::from_secs(100);
    tokio::time::sleep(ran_for).await;
    let logs: BTreeMap<String, String> = nodes.iter().map(|n| (n.name.clone(), n.log())).collect();
    for node in nodes {
        node.stop().await;
    }
    let all_logs = || {
        logs.iter()
            .map(|(n, l)| format!("--- {n}\n{l}"))
            .collect::<String>()
    };

    // Each scan's runs: one per due time (the nodes started together, so their timers
    // agree on the due times: a due time served by two nodes would show as extra runs),
    // and never two at once (the scan's lease, across nodes).
    let runs = db.rows(
        "SELECT scan, state, started_at, finished_at, vendor_scan_id FROM sync_runs \
         ORDER BY scan, id",
    );
    type Run = (String, i64, Option<i64>, Option<String>);
    let mut by_scan: BTreeMap<String, Vec<Run>> = BTreeMap::new();
    for r in &runs {
        by_scan.entry(r[0].clone().unwrap()).or_default().push((
            r[1].clone().unwrap(),
            millis(r[2].as_deref().unwrap()),
            r[3].as_deref().map(millis),
            r[4].clone(),
        ));
    }
    assert_eq!(by_scan.len(), SCANS, "every scan ran: {runs:?}");
    // Due at the start and every EVERY seconds after, the last one about when they stop.
    let due_times = ran_for.as_secs() as i64 / EVERY + 1;
    for (scan, runs) in &by_scan {
        assert!(
            runs.len() as i64 >= due_times - 1 && runs.len() as i64 <= due_times,
            "{scan}: {} runs for {due_times} due times in {ran_for:?}: {runs:?}\n{}",
            runs.len(),
            all_logs()
        );
        for pair in runs.windows(2) {
            let ended = pair[0].2.expect("an earlier run ended");
            assert!(pair[1].1 >= ended, "{scan}: two runs at once: {runs:?}");
        }
        // The last may be left `running` on its vendor scan by the stop, for the next start.
        for (i, (state, _, _, _)) in runs.iter().enumerate() {
            assert!(
                state == "succeeded"
                    || state == "interrupted"
                    || (state == "running" && i + 1 == runs.len()),
                "{scan}: {runs:?}\n{}",
                all_logs()
            );
        }
    }
    // Each run started one vendor scan of its own, and no vendor scan was started for
    // nothing (the simulator numbers its scans per project, so ids repeat across scans).
    let mut recorded = 0;
    for (scan, runs) in &by_scan {
        let ids: Vec<&String> = runs.iter().filter_map(|(_, _, _, v)| v.as_ref()).collect();
        let distinct: BTreeSet<&&String> = ids.iter().collect();
        assert_eq!(
            distinct.len(),
            ids.len(),
            "{scan}: a vendor scan shared by two runs"
        );
        recorded += ids.len();
    }
    assert_eq!(
        scan_starts(&sim),
        recorded,
        "vendor scans started vs runs that recorded one"
    );
    assert_findings_whole(&db, SCANS, i64::from(FINDINGS));
    // The work was shared: every node ran some of it.
    for (name, log) in &logs {
        assert!(
            log.contains("run finished"),
            "{name} never finished a run:\n{}",
            all_logs()
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_of_a_killed_node_are_finished_by_the_others_after_its_lease() {
    let Some(db) = Database::fresh("scansync_killed") else {
        return;
    };
    const SCANS: usize = 6;
    const FINDINGS: u32 = 15;
    // Vendor scans long enough to kill a node while it waits on one.
    let scan_seconds = 8.0;
    let (sim, _dir, mut nodes) = three_nodes(
        &db,
        SCANS,
        FINDINGS,
        scan_seconds,
        "{ every = \"1h\" }",
        Some(LEASE_TTL),
    )
    .await;

    // Wait until a node waits on a vendor scan (whichever won the first claims), then kill
    // it without a goodbye.
    let running_sql = "SELECT split_part(o.label, ':', 1), r.id FROM sync_runs r
                       JOIN owners o ON o.owner = r.owner
                       WHERE r.state = 'running' AND r.vendor_scan_id IS NOT NULL ORDER BY r.id";
    let start = Instant::now();
    let victim = loop {
        if let Some(row) = db.rows(running_sql).into_iter().next() {
            break row[0].clone().unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no node ran a scan:\n{}",
            nodes.iter().map(Node::log).collect::<String>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let at = nodes.iter().position(|n| n.name == victim).unwrap();
    let killed = nodes.remove(at);
    killed.signal("KILL");
    let killed_at = Instant::now();
    drop(killed);
    // Its runs at the moment of the kill (it may have begun more since the query).
    let victims: Vec<String> = db
        .rows(&format!(
            "SELECT r.id FROM sync_runs r JOIN owners o ON o.owner = r.owner
             WHERE o.label LIKE '{victim}:%' AND r.state = 'running'
               AND r.vendor_scan_id IS NOT NULL ORDER BY r.id"
        ))
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();

    // Its runs end, under the same ids, on the other nodes: once its lease expires, at the
    // next adoption tick (a third of the lease), the vendor scan polled where it was.
    let ids = victims.join(",");
    let limit =
        LEASE_TTL + LEASE_TTL / 3 + Duration::from_secs_f64(scan_seconds) + Duration::from_secs(10);
    loop {
        let done = db.count(&format!(
            "SELECT count(*) FROM sync_runs WHERE id IN ({ids}) AND state = 'succeeded'"
        ));
        if done as usize == victims.len() {
            break;
        }
        assert!(
            killed_at.elapsed() < limit,
            "{victim}'s runs {ids} not finished by the others within {limit:?}: {:?}\n{}\n{}",
            db.rows("SELECT id, scan, state, owner, error FROM sync_runs ORDER BY id"),
            nodes[0].log(),
            nodes[1].log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every scan's one due time ran once: one run each (the adopted ones under their old
    // ids), one vendor scan each, its findings whole.
    let start = Instant::now();
    while db.count("SELECT count(*) FROM sync_runs WHERE state = 'succeeded'") < SCANS as i64 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{:?}",
            db.rows("SELECT id, scan, state FROM sync_runs")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for node in nodes {
        node.stop().await;
    }
    assert_eq!(
        db.rows("SELECT scan, count(*) FROM sync_runs GROUP BY scan HAVING count(*) > 1"),
        Vec::<Vec<Option<String>>>::new(),
        "a scan ran twice for one due time"
    );
    assert_eq!(scan_starts(&sim), SCANS, "one vendor scan per scan");
    assert_findings_whole(&db, SCANS, i64::from(FINDINGS));
    sim.shutdown().await;
}
