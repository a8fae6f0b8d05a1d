//! The real `scansync` binary against the in-process vendor simulator: what lands in the
//! store is exactly what the simulator served, churn is counted exactly, faults fail runs
//! without losing or wrongly fixing findings, and the token never leaks.

use scansync::sim::{Fault, FaultKind};
use std::collections::{BTreeSet, HashSet};
use std::process::Command;

mod harness;

use harness::*;

#[test]
fn sync_stores_exactly_the_simulators_findings_and_resync_adds_nothing() {
    let h = Harness::start(options(3, 2_000, 0.0));
    let scans = [
        ("ct-1", "ct", "project-1"),
        ("ct-2", "ct", "project-2"),
        ("ct-3", "ct", "project-3"),
    ];
    h.write_config(&scans);

    assert_exit(&h.sync(), 0);
    for (i, (name, _, _)) in scans.iter().enumerate() {
        let expected = h.expected("ct", i as u32 + 1, 0);
        assert_eq!(expected.len(), 2_000);
        assert_eq!(h.stored_ids(name), expected, "scan {name}");
        let runs = h.runs(name);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0]["state"], "succeeded");
        assert_eq!(counter(&runs[0], "new"), 2_000);
    }

    assert_exit(&h.sync(), 0);
    for (i, (name, _, _)) in scans.iter().enumerate() {
        let stored = h.stored(name);
        assert_eq!(stored.len(), 2_000, "no duplicate rows for {name}");
        assert!(stored.iter().all(|(_, s)| s != "fixed"), "{name}");
        assert_eq!(h.open_ids(name), h.expected("ct", i as u32 + 1, 1));
        let runs = h.runs(name);
        assert_eq!(runs.len(), 2);
        let second = &runs[1];
        assert_eq!(second["state"], "succeeded");
        assert_eq!(counter(second, "new"), 0, "{second}");
        assert_eq!(counter(second, "fixed"), 0, "{second}");
        assert_eq!(counter(second, "reopened"), 0, "{second}");
        assert_eq!(counter(second, "seen"), 2_000, "{second}");
    }
}

/// New, fixed and reopened for each of `generations` consecutive full listings.
fn expected_counters(sets: &[BTreeSet<String>]) -> Vec<(u64, u64, u64)> {
    let mut ever: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for (k, set) in sets.iter().enumerate() {
        let prev = if k == 0 { None } else { Some(&sets[k - 1]) };
        let new = set.iter().filter(|id| !ever.contains(*id)).count() as u64;
        let reopened = set
            .iter()
            .filter(|id| ever.contains(*id) && prev.is_some_and(|p| !p.contains(*id)))
            .count() as u64;
        let fixed = prev.map_or(0, |p| p.iter().filter(|id| !set.contains(*id)).count()) as u64;
        out.push((new, fixed, reopened));
        ever.extend(set.iter().cloned());
    }
    out
}

#[test]
fn churned_scan_counts_new_fixed_reopened_exactly() {
    let h = Harness::start(options(2, 400, 20.0));
    h.write_config(&[
        ("ct-churn", "ct", "project-1"),
        ("salt-churn", "salt", "project-2"),
    ]);

    const RUNS: u64 = 4;
    for run in 0..RUNS {
        assert_exit(&h.sync(), 0);
        assert_eq!(
            h.open_ids("ct-churn"),
            h.expected("ct", 1, run),
            "run {run}"
        );
        assert_eq!(
            h.open_ids("salt-churn"),
            h.expected("salt", 2, run),
            "run {run}"
        );
        h.sim.advance();
    }

    for (scan, vendor, project) in [("ct-churn", "ct", 1), ("salt-churn", "salt", 2)] {
        let sets: Vec<_> = (0..RUNS).map(|g| h.expected(vendor, project, g)).collect();
        let identities: Vec<_> = (0..RUNS)
            .map(|g| h.identities(vendor, project, g))
            .collect();
        let expected = expected_counters(&identities);
        // The churn must actually exercise every counter, or this test pins nothing.
        assert!(expected[1..].iter().all(|&(n, f, _)| n > 0 && f > 0));
        assert!(expected[1..].iter().any(|&(_, _, r)| r > 0));
        let runs = h.runs(scan);
        assert_eq!(runs.len(), RUNS as usize);
        let got: Vec<_> = runs
            .iter()
            .map(|r| {
                (
                    counter(r, "new"),
                    counter(r, "fixed"),
                    counter(r, "reopened"),
                )
            })
            .collect();
        assert_eq!(got, expected, "{scan}: (new, fixed, reopened) per run");
        // Identity is fingerprint recipe 2 (rule, place, title, occurrence), not the vendor's
        // id (a proposal in the contract): one row per identity ever listed, and every
        // stored vendor id is one the vendor listed.
        let ever: BTreeSet<String> = sets.iter().flatten().cloned().collect();
        let ever_identities: BTreeSet<String> = identities.iter().flatten().cloned().collect();
        assert_eq!(h.stored(scan).len(), ever_identities.len(), "{scan}: rows");
        let stored = h.stored_ids(scan);
        assert!(stored.is_subset(&ever), "{scan}: {stored:?}");
    }
}

#[test]
fn rate_limited_once_then_succeeds() {
    let mut opts = options(1, 1_200, 0.0);
    opts.faults = vec![Fault::first(FaultKind::Status429, 1)];
    let h = Harness::start(opts);
    h.write_config(&[("ct-1", "ct", "project-1")]);

    assert_exit(&h.sync(), 0);
    assert_eq!(h.stored_ids("ct-1"), h.expected("ct", 1, 0));
    let runs = h.runs("ct-1");
    assert_eq!(runs[0]["state"], "succeeded", "{}", runs[0]);
}

#[test]
fn server_error_forever_fails_the_run_records_the_error_and_fixes_nothing() {
    let h = Harness::start(options(1, 600, 0.0));
    h.write_config(&[("ct-1", "ct", "project-1"), ("salt-1", "salt", "project-1")]);
    assert_exit(&h.sync(), 0);
    let before_ct = h.stored("ct-1");
    let before_salt = h.stored("salt-1");
    assert_eq!(before_ct.len(), 600);
    assert_eq!(before_salt.len(), 600);

    h.sim.set_faults(vec![Fault::always(FaultKind::Status500)]);
    let out = h.sync();
    assert_exit(&out, 1);

    for (scan, before) in [("ct-1", before_ct), ("salt-1", before_salt)] {
        let runs = h.runs(scan);
        let last = runs.last().unwrap();
        assert_eq!(last["state"], "failed", "{last}");
        let error = last["error"].as_str().unwrap_or("");
        assert!(
            error.contains("500"),
            "{scan}: error names the status: {last}"
        );
        assert_eq!(counter(last, "fixed"), 0, "{last}");
        let mut after = h.stored(scan);
        let mut before = before;
        after.sort();
        before.sort();
        assert_eq!(after, before, "{scan}: a failed run changes no finding");
    }
}

#[test]
fn truncated_page_fails_the_run_and_keeps_earlier_pages() {
    // Salt Security pages by 100: 2,000 gaps are 20 pages. The fifth listing request is cut:
    // the asset lookup in the inventory is the first, so that is the fourth gaps page.
    let mut opts = options(1, 2_000, 0.0);
    opts.faults = vec![Fault::nth(FaultKind::Truncated, 5)];
    let h = Harness::start(opts);
    h.write_config(&[("salt-1", "salt", "project-1")]);

    assert_exit(&h.sync(), 1);
    let runs = h.runs("salt-1");
    let run = &runs[0];
    assert_eq!(run["state"], "failed", "{run}");
    assert!(
        !run["error"].as_str().unwrap_or("").is_empty(),
        "the failure is recorded: {run}"
    );
    assert_eq!(counter(run, "fixed"), 0, "{run}");
    let stored = h.stored("salt-1");
    assert!(stored.iter().all(|(_, s)| s != "fixed"));
    let ids: BTreeSet<String> = stored.into_iter().map(|(id, _)| id).collect();
    assert!(
        !ids.is_empty(),
        "pages before the truncated one are kept (pages {})",
        run["pages"]
    );
    assert!(ids.len() < 2_000);
    assert!(ids.is_subset(&h.expected("salt", 1, 0)));
    assert_eq!(ids.len() as u64, counter(run, "seen"), "{run}");
    assert_eq!(ids.len() as u64, counter(run, "pages") * 100, "{run}");
    assert_eq!(
        counter(run, "pages"),
        3,
        "pages 1-3 committed, the 4th cut: {run}"
    );
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn no_output_contains_the_token() {
    let h = Harness::start(options(1, 300, 0.0));
    h.write_config(&[("ct-1", "ct", "project-1"), ("salt-1", "salt", "project-1")]);
    let commands: [&[&str]; 6] = [
        &["sync"],
        &["test-connection"],
        &["check-config"],
        &["findings"],
        &["findings", "--format", "json"],
        &["runs", "--format", "json"],
    ];
    for args in commands {
        let out = Command::new(env!("CARGO_BIN_EXE_scansync"))
            .arg("--config")
            .arg(h.config_path())
            .args(["--log-level", "trace"])
            .args(args)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            !contains(&out.stdout, TOKEN),
            "{args:?} stdout leaks the token"
        );
        assert!(
            !contains(&out.stderr, TOKEN),
            "{args:?} stderr leaks the token"
        );
    }
    assert!(!h.stored("ct-1").is_empty());
    for entry in std::fs::read_dir(h.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path == h.config_path() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !contains(&bytes, TOKEN),
            "{} holds the token",
            path.display()
        );
    }
    assert!(h.store_path().exists());
}
