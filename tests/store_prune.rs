//! `scansync store prune`: what `[store] retention` lets go, counted with `--dry-run` (the
//! store untouched), deleted without; findings of the scans in use stay.

mod harness;

use harness::*;

fn db(h: &Harness) -> rusqlite::Connection {
    rusqlite::Connection::open(h.store_path()).unwrap()
}

fn scalar(h: &Harness, sql: &str) -> i64 {
    db(h).query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn store_prune_counts_with_dry_run_and_deletes_old_history_but_no_finding() {
    let h = Harness::start(options(1, 40, 30.0));
    h.write_config(&[("ct-scan", "ct", "project-1")]);
    for _ in 0..3 {
        assert_exit(&h.sync(), 0);
        h.sim.advance();
    }
    // Everything a year old: past every default retention.
    db(&h)
        .execute_batch(
            "UPDATE sync_runs SET started_at = '2025-01-01T00:00:00.000Z',
                 finished_at = '2025-01-01T00:01:00.000Z', notified_at = '2025-01-01T00:01:00.000Z';
             UPDATE finding_events SET at = '2025-01-01T00:00:30.000Z';
             UPDATE findings SET last_seen = '2025-01-01T00:00:30.000Z';",
        )
        .unwrap();
    let present = scalar(&h, "SELECT count(*) FROM findings WHERE state != 'fixed'");
    let fixed = scalar(&h, "SELECT count(*) FROM findings WHERE state = 'fixed'");
    assert!(fixed > 0 && present > 0);
    let events = scalar(&h, "SELECT count(*) FROM finding_events");
    let runs = scalar(&h, "SELECT count(*) FROM sync_runs");
    assert!(events > 0 && runs == 3);

    let before = std::fs::read(h.store_path()).unwrap();
    let out = h.scansync(&["store", "prune", "--dry-run"]);
    assert_exit(&out, 0);
    let stdout = text(&out);
    assert!(
        stdout.contains(&format!("{events:>9}  finding events would go")),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read(h.store_path()).unwrap(),
        before,
        "a dry run changes nothing"
    );

    let out = h.scansync(&["store", "prune"]);
    assert_exit(&out, 0);
    let stdout = text(&out);
    assert!(
        stdout.contains(&format!("{events:>9}  finding events deleted")),
        "{stdout}"
    );
    assert_eq!(scalar(&h, "SELECT count(*) FROM finding_events"), 0);
    // Every finding the vendor still reports stays; fixed ones last seen a year ago go.
    assert_eq!(
        scalar(&h, "SELECT count(*) FROM findings WHERE state != 'fixed'"),
        present
    );
    assert_eq!(
        scalar(&h, "SELECT count(*) FROM findings WHERE state = 'fixed'"),
        0
    );
    assert!(
        stdout.contains(&format!("{fixed:>9}  fixed findings deleted")),
        "{stdout}"
    );
    // The newest run stays (the schedules read it, the open findings name it).
    assert_eq!(scalar(&h, "SELECT count(*) FROM sync_runs"), 1, "of {runs}");
    assert_eq!(
        scalar(
            &h,
            "SELECT count(*) FROM findings WHERE last_run_id NOT IN (SELECT id FROM sync_runs)"
        ),
        0
    );
    // And the store still syncs.
    assert_exit(&h.sync(), 0);
}
