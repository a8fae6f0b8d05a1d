//! Nothing grows forever: what `[store] retention` lets go, deleted in small batches.
//!
//! Each step deletes at most [`BATCH`] rows of one kind in one short transaction, and the
//! caller (the daemon, `scansync store prune`) takes the store once per step, so a run's page
//! commit never waits behind a long purge. What is never pruned: a finding of a scan in use
//! that is not fixed (open, missing or triaged: the vendor still reports it), the newest run
//! of each scan (the schedules read it), a run a finding or an event or a pending
//! notification still names, the newest successful run of each scan, and the events and
//! notifications of a run not yet notified. A fixed finding whose last sighting and whole
//! history are older than `runs` goes (a return after that is news again), unless a person
//! triaged it (it returns to that triage).

use super::db::params;
use super::{stamp, Store, StoreError};
use crate::config::Retention;

/// Rows deleted per transaction.
pub const BATCH: i64 = 500;

/// What a prune deleted (or, for a dry run, would delete).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Finding events older than `events` (of runs already notified).
    pub events: u64,
    /// Ended runs older than `runs` that nothing names any more.
    pub runs: u64,
    /// Fixed findings whose last sighting and history are older than `runs`, none a person
    /// triaged (their history goes with them).
    pub fixed_findings: u64,
    /// Delivered or given-up webhook notifications older than `notifications`.
    pub notifications: u64,
    /// Webhook delivery ids older than `webhook_deliveries`.
    pub webhook_deliveries: u64,
    /// Branch scopes (`name@branch`) without a run for `branch_scopes`, with their rows.
    pub branch_scopes: u64,
    /// The findings those branch scopes held.
    pub branch_findings: u64,
    /// The other rows of those scopes: their findings' events, their runs and the runs'
    /// notifications.
    pub branch_rows: u64,
}

impl PruneReport {
    pub fn is_empty(&self) -> bool {
        *self == PruneReport::default()
    }

    pub fn add(&mut self, other: PruneReport) {
        self.events += other.events;
        self.runs += other.runs;
        self.fixed_findings += other.fixed_findings;
        self.notifications += other.notifications;
        self.webhook_deliveries += other.webhook_deliveries;
        self.branch_scopes += other.branch_scopes;
        self.branch_findings += other.branch_findings;
        self.branch_rows += other.branch_rows;
    }
}

/// The stored-time text `age` before now.
fn before(age: std::time::Duration) -> String {
    let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
    stamp(
        chrono::Utc::now()
            .checked_sub_signed(age)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC),
    )
}

/// Ids of the rows of each kind that may go (`?1` = the cutoff), as `SELECT id …`.
const OLD_NOTIFICATIONS: &str = "SELECT id FROM webhook_outbox
     WHERE coalesce(delivered_at, gave_up_at) IS NOT NULL
       AND coalesce(delivered_at, gave_up_at) < ?1";
/// Webhook delivery ids older than the cutoff, but the newest of each scan (see
/// `Store::claim_delivery`).
const OLD_DELIVERIES: &str = "SELECT rowid FROM hook_deliveries WHERE received_at < ?1
       AND rowid NOT IN (SELECT max(rowid) FROM hook_deliveries GROUP BY scan)";
const OLD_EVENTS: &str = "SELECT e.id FROM finding_events e
     WHERE e.at < ?1
       AND (e.run_id IS NULL OR e.run_id IN (SELECT id FROM sync_runs
                                               WHERE state != 'running'
                                                 AND notified_at IS NOT NULL))";
/// Fixed findings whose last sighting and whole history (the fix included) are older than
/// the cutoff: what names the old runs. A finding a person triaged stays: it returns to
/// that triage, and without the row it would come back as news.
const OLD_FIXED_FINDINGS: &str = "SELECT f.id FROM findings f
     WHERE f.state = 'fixed' AND f.last_seen < ?1
       AND f.triage_source IS NOT 'local'
       AND NOT EXISTS (SELECT 1 FROM finding_events e WHERE e.finding_id = f.id AND e.at >= ?1)";
/// Old ended runs that nothing names: not the newest of their scan nor its newest success
/// (the last-success metric and `/readyz` read it), not a finding's `last_run_id`, no event
/// left, no notification left.
const OLD_RUNS: &str = "SELECT r.id FROM sync_runs r
     WHERE r.state != 'running' AND r.finished_at < ?1
       AND r.id NOT IN (SELECT max(id) FROM sync_runs GROUP BY scan)
       AND r.id NOT IN (SELECT max(id) FROM sync_runs WHERE state = 'succeeded' GROUP BY scan)
       AND r.id NOT IN (SELECT DISTINCT last_run_id FROM findings)
       AND NOT EXISTS (SELECT 1 FROM finding_events e WHERE e.run_id = r.id)
       AND NOT EXISTS (SELECT 1 FROM webhook_outbox o WHERE o.run_id = r.id)";
/// Branch scopes whose newest run (or, without one, whose creation) is older than `?1`.
const IDLE_BRANCH_SCOPES: &str = "SELECT s.id FROM scans s
     WHERE instr(s.name, '@') > 0
       AND coalesce((SELECT max(started_at) FROM sync_runs r WHERE r.scan_id = s.id),
                    s.created_at) < ?1
       AND NOT EXISTS (SELECT 1 FROM sync_runs r WHERE r.scan_id = s.id AND r.state = 'running')";

impl Store {
    /// What a prune by `retention` would delete now, without deleting anything.
    pub fn prune_preview(&self, retention: &Retention) -> Result<PruneReport, StoreError> {
        let count = |ids: &str, age| -> Result<u64, StoreError> {
            Ok(self
                .conn
                .prepare(&format!("SELECT count(*) FROM ({ids}) AS listed"))?
                .query_row(params![before(age)], |r| r.get::<i64>(0))? as u64)
        };
        let scopes = before(retention.branch_scopes);
        let scope_count = |sql: String| -> Result<u64, StoreError> {
            Ok(self
                .conn
                .prepare(&sql)?
                .query_row(params![scopes], |r| r.get::<i64>(0))? as u64)
        };
        let branch_findings = scope_count(format!(
            "SELECT count(*) FROM findings WHERE scan_id IN ({IDLE_BRANCH_SCOPES})"
        ))?;
        let scope_runs =
            format!("SELECT id FROM sync_runs WHERE scan_id IN ({IDLE_BRANCH_SCOPES})");
        let branch_rows = scope_count(format!(
            "SELECT (SELECT count(*) FROM finding_events WHERE finding_id IN
                        (SELECT id FROM findings WHERE scan_id IN ({IDLE_BRANCH_SCOPES})))
                  + (SELECT count(*) FROM ({scope_runs}) AS listed)
                  + (SELECT count(*) FROM webhook_outbox WHERE run_id IN ({scope_runs}))"
        ))?;
        Ok(PruneReport {
            events: count(OLD_EVENTS, retention.events)?,
            // Runs that only become free once their events go are counted by the real
            // prune, not here: a preview is a lower bound for runs.
            runs: count(OLD_RUNS, retention.runs)?,
            fixed_findings: count(OLD_FIXED_FINDINGS, retention.runs)?,
            notifications: count(OLD_NOTIFICATIONS, retention.notifications)?,
            webhook_deliveries: count(OLD_DELIVERIES, retention.webhook_deliveries)?,
            branch_scopes: count(IDLE_BRANCH_SCOPES, retention.branch_scopes)?,
            branch_findings,
            branch_rows,
        })
    }

    /// One step of a prune: at most [`BATCH`] rows of each kind, each kind in its own short
    /// transaction. Call again until it returns an empty report (see [`Store::prune`]).
    pub fn prune_step(&mut self, retention: &Retention) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport {
            notifications: self.delete_batch(
                "webhook_outbox",
                "id",
                OLD_NOTIFICATIONS,
                retention.notifications,
            )?,
            webhook_deliveries: self.delete_batch(
                "hook_deliveries",
                "rowid",
                OLD_DELIVERIES,
                retention.webhook_deliveries,
            )?,
            events: self.delete_batch("finding_events", "id", OLD_EVENTS, retention.events)?,
            ..PruneReport::default()
        };
        // Runs after what keeps a run named: events, notifications, findings last seen in it.
        report.fixed_findings = self.delete_old_fixed_findings(retention.runs)?;
        report.runs = self.delete_batch("sync_runs", "id", OLD_RUNS, retention.runs)?;
        report.add(self.drop_idle_branch_scope(retention)?);
        Ok(report)
    }

    /// Prunes to the end, step by step; what went.
    pub fn prune(&mut self, retention: &Retention) -> Result<PruneReport, StoreError> {
        let mut total = PruneReport::default();
        loop {
            let step = self.prune_step(retention)?;
            if step.is_empty() {
                return Ok(total);
            }
            total.add(step);
        }
    }

    fn delete_batch(
        &mut self,
        table: &str,
        key: &str,
        ids: &str,
        age: std::time::Duration,
    ) -> Result<u64, StoreError> {
        let tx = self.conn.write_transaction()?;
        let n = tx
            .prepare(&format!(
                "DELETE FROM {table} WHERE {key} IN ({ids} LIMIT {BATCH})"
            ))?
            .execute(params![before(age)])?;
        tx.commit()?;
        Ok(n as u64)
    }

    /// Deletes up to [`BATCH`] old fixed findings, their events first (events may be kept
    /// longer than runs). SQLite's schema would delete those events with the findings;
    /// PostgreSQL's has no key there (its migration 8).
    fn delete_old_fixed_findings(&mut self, age: std::time::Duration) -> Result<u64, StoreError> {
        let tx = self.conn.write_transaction()?;
        let cutoff = before(age);
        // The same rows both times: deleting their events changes no other row's standing.
        let ids = format!("{OLD_FIXED_FINDINGS} ORDER BY f.id LIMIT {BATCH}");
        tx.prepare(&format!(
            "DELETE FROM finding_events WHERE finding_id IN ({ids})"
        ))?
        .execute(params![cutoff])?;
        let n = tx
            .prepare(&format!("DELETE FROM findings WHERE id IN ({ids})"))?
            .execute(params![cutoff])?;
        tx.commit()?;
        Ok(n as u64)
    }

    /// Deletes up to [`BATCH`] rows of one idle branch scope, in order: its findings'
    /// events, its findings, its runs' notifications and events, its runs; the scope itself
    /// (lease and row) goes in the step that finds nothing else left.
    fn drop_idle_branch_scope(&mut self, retention: &Retention) -> Result<PruneReport, StoreError> {
        let tx = self.conn.write_transaction()?;
        let scope: Option<(i64, String)> = {
            let mut stmt = tx.prepare(&format!(
                "SELECT id, name FROM scans WHERE id IN ({IDLE_BRANCH_SCOPES}) LIMIT 1"
            ))?;
            let mut rows = stmt.query(params![before(retention.branch_scopes)])?;
            match rows.next()? {
                Some(r) => Some((r.get(0)?, r.get(1)?)),
                None => None,
            }
        };
        let Some((scan_id, name)) = scope else {
            return Ok(PruneReport::default());
        };
        let findings = "SELECT id FROM findings WHERE scan_id = ?1 ORDER BY id";
        let runs = "SELECT id FROM sync_runs WHERE scan_id = ?1";
        let batch = |table: &str, key: &str, ids: String| -> Result<u64, StoreError> {
            Ok(tx
                .prepare(&format!(
                    "DELETE FROM {table} WHERE {key} IN ({ids} LIMIT {BATCH})"
                ))?
                .execute(params![scan_id])? as u64)
        };
        let mut report = PruneReport::default();
        let steps: [(&str, String); 5] = [
            (
                "finding_events",
                format!("SELECT id FROM finding_events WHERE finding_id IN ({findings})"),
            ),
            ("findings", findings.to_string()),
            (
                "webhook_outbox",
                format!("SELECT id FROM webhook_outbox WHERE run_id IN ({runs})"),
            ),
            (
                "finding_events",
                format!("SELECT id FROM finding_events WHERE run_id IN ({runs})"),
            ),
            ("sync_runs", runs.to_string()),
        ];
        let mut done = true;
        for (table, ids) in steps {
            if table == "findings" {
                // The scope's count of present findings loses those this step deletes (the
                // same rows: ordered by id), in case a run of the scope begins before the
                // scope is gone.
                tx.prepare(&format!(
                    "UPDATE scans SET present_count = present_count
                         - (SELECT count(*) FROM findings
                            WHERE id IN ({ids} LIMIT {BATCH}) AND state <> 'fixed')
                     WHERE id = ?1"
                ))?
                .execute(params![scan_id])?;
            }
            let n = batch(table, "id", ids)?;
            if table == "findings" {
                report.branch_findings = n;
            } else {
                report.branch_rows = n;
            }
            if n > 0 {
                done = false;
                break;
            }
        }
        if done {
            tx.execute("DELETE FROM scan_leases WHERE scan = ?1", params![name])?;
            tx.execute("DELETE FROM scans WHERE id = ?1", params![scan_id])?;
            report.branch_scopes = 1;
            tracing::info!(scan = %name, "branch scope without a run for the retention period: removed with its findings");
        }
        tx.commit()?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{count, findings, import, temp_store};
    use super::super::RunEnd;
    use super::*;

    /// Moves every stored time of the store back by `days`.
    fn age(store: &Store, days: i64) {
        super::super::test_db::age(store, days, super::super::test_db::RUN_TIMES);
    }

    #[test]
    fn a_prune_deletes_old_runs_and_events_and_never_a_finding_of_a_scan_in_use() {
        let (_dir, mut store) = temp_store();
        // Three runs of `shop`, two of them old; and a branch scope idle for long.
        import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
        import(&mut store, "shop", &[findings(0..5)], RunEnd::Succeeded);
        import(
            &mut store,
            "shop@feature",
            &[findings(0..3)],
            RunEnd::Succeeded,
        );
        age(&store, 200);
        import(&mut store, "shop", &[findings(0..5)], RunEnd::Succeeded);
        let findings_before = count(&store, "SELECT count(*) FROM findings WHERE scan_id IN (SELECT id FROM scans WHERE name = 'shop')");
        let retention = Retention::default();

        let preview = store.prune_preview(&retention).unwrap();
        assert!(preview.events > 0, "{preview:?}");
        assert_eq!((preview.branch_scopes, preview.branch_findings), (1, 3));
        let report = store.prune(&retention).unwrap();
        assert_eq!(report.events, preview.events);
        assert_eq!((report.branch_scopes, report.branch_findings), (1, 3));
        // Run 1 is named by nothing now; run 2 is still some fixed findings' last run.
        assert_eq!(report.runs, 1, "{report:?}");
        assert_eq!(
            count(&store, "SELECT count(*) FROM findings WHERE scan_id IN (SELECT id FROM scans WHERE name = 'shop')"),
            findings_before,
            "no finding of a scan in use goes, open or fixed"
        );
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM scans WHERE name = 'shop@feature'"
            ),
            0
        );
        let cutoff = stamp(chrono::Utc::now() - chrono::Duration::days(180));
        assert_eq!(
            count(
                &store,
                &format!("SELECT count(*) FROM finding_events WHERE at < '{cutoff}'")
            ),
            0
        );
        assert_eq!(super::super::test_db::foreign_key_violations(&store), 0);
        // Nothing left: a second prune deletes nothing.
        assert!(store.prune(&retention).unwrap().is_empty());
    }

    #[test]
    fn an_old_fixed_finding_goes_with_its_events_when_events_are_kept_longer() {
        let (_dir, mut store) = temp_store();
        import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
        import(&mut store, "shop", &[findings(0..8)], RunEnd::Succeeded);
        age(&store, 200);
        let last_seen: &[(&str, &[&str])] = &[("findings", &["first_seen", "last_seen"])];
        super::super::test_db::age(&store, 200, last_seen);
        import(&mut store, "shop", &[findings(0..8)], RunEnd::Succeeded);
        let retention = Retention {
            runs: std::time::Duration::from_secs(100 * 86_400),
            events: std::time::Duration::from_secs(400 * 86_400),
            ..Retention::default()
        };
        let report = store.prune(&retention).unwrap();
        // The two fixed 200 days ago, with their events (younger than `events`).
        assert_eq!(report.fixed_findings, 2, "{report:?}");
        assert_eq!(report.events, 0, "{report:?}");
        assert_eq!(count(&store, "SELECT count(*) FROM findings"), 8);
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM finding_events
                 WHERE finding_id NOT IN (SELECT id FROM findings)"
            ),
            0,
            "no event of a deleted finding is left"
        );
        assert_eq!(super::super::test_db::foreign_key_violations(&store), 0);
    }

    #[test]
    fn a_prune_keeps_what_is_younger_than_the_retention() {
        let (_dir, mut store) = temp_store();
        import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
        import(&mut store, "shop", &[findings(0..5)], RunEnd::Succeeded);
        import(
            &mut store,
            "shop@feature",
            &[findings(0..3)],
            RunEnd::Succeeded,
        );
        age(&store, 20);
        let events = count(&store, "SELECT count(*) FROM finding_events");
        let report = store.prune(&Retention::default()).unwrap();
        assert!(report.is_empty(), "{report:?}");
        assert_eq!(count(&store, "SELECT count(*) FROM finding_events"), events);
        // A shorter setting lets them go.
        let short = Retention {
            events: std::time::Duration::from_secs(10 * 24 * 3600),
            ..Retention::default()
        };
        assert_eq!(store.prune(&short).unwrap().events as i64, events);
    }
}
