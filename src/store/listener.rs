//! What the listener keeps in the store: the replay guard for webhook deliveries, the
//! readiness probe, and the last successful sync of each scan for `/readyz`.

use super::db::{params, OptionalExtension};
use super::lease::register_owner;
use super::{now, read_run, RunId, RunRow, RunScope, Store, StoreError};
use std::time::Duration;

/// The newest delivery of each scan, which no cleanup removes.
pub(super) const NEWEST_DELIVERIES: &str = "SELECT max(rowid) FROM hook_deliveries GROUP BY scan";

/// What [`Store::claim_delivery`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time seen (within the keep window): recorded, go ahead.
    New,
    /// Seen before at `received_at`; `run_id` is the run it started, when one was recorded.
    Duplicate {
        run_id: Option<RunId>,
        received_at: String,
    },
}

impl StoreError {
    /// True when another connection held the write lock past `busy_timeout`: the file is
    /// fine, just taken (a backup, another scansync migrating it), so waiting is worth it.
    /// The daemon waits on this at start-up while its listener answers `/readyz` with 503.
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Open { source, .. } | StoreError::Db(source) => source.is_busy(),
            _ => false,
        }
    }
}

impl Store {
    /// Records a webhook delivery id for `scan` unless it is already there, with no run:
    /// the listener records a push with its runs ([`Store::claim_push`]).
    pub fn claim_delivery(
        &mut self,
        scan: &str,
        delivery_id: &str,
        keep: Duration,
    ) -> Result<Claim, StoreError> {
        Ok(self.claim_push(scan, delivery_id, keep, &[])?.0)
    }

    /// Records a push's delivery id for `scan` and begins its queued runs (one per scope,
    /// as [`Store::begin_queued_run`] does; the delivery names the first), in one
    /// transaction, unless the delivery is already there: then nothing is begun. So a
    /// repeat finds the runs the first delivery began, or else nothing of it was recorded:
    /// a node that dies after the commit leaves queued runs that another node takes over
    /// and runs ([`Store::adopt_queued_run`]), one that dies before leaves nothing, and the
    /// sender's retry is new. Returns the claim and the runs begun, in the scopes' order.
    ///
    /// Deliveries older than `keep` are forgotten first, in the same transaction, so the
    /// table stays small and an id is refused for `keep` after it was first accepted; the
    /// newest of each scan is never forgotten, so the latest push replayed however late
    /// starts nothing.
    pub fn claim_push(
        &mut self,
        scan: &str,
        delivery_id: &str,
        keep: Duration,
        scopes: &[RunScope],
    ) -> Result<(Claim, Vec<RunId>), StoreError> {
        let at = now();
        let cutoff = cutoff(keep);
        let tx = self.conn.write_transaction()?;
        tx.prepare_cached(&format!(
            "DELETE FROM hook_deliveries WHERE received_at < ?1 AND rowid NOT IN ({NEWEST_DELIVERIES})"
        ))?
        .execute(params![cutoff])?;
        let inserted = tx
            .prepare_cached(
                "INSERT INTO hook_deliveries (scan, delivery_id, received_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (scan, delivery_id) DO NOTHING",
            )?
            .execute(params![scan, delivery_id, at])?;
        if inserted != 1 {
            let (run_id, received_at) = tx
                .prepare_cached(
                    "SELECT run_id, received_at FROM hook_deliveries
                     WHERE scan = ?1 AND delivery_id = ?2",
                )?
                .query_row(params![scan, delivery_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            tx.commit()?;
            let claim = Claim::Duplicate {
                run_id,
                received_at,
            };
            return Ok((claim, Vec::new()));
        }
        let runs = scopes
            .iter()
            .map(|scope| super::runs::begin_in(&tx, &self.owner, scope, false, None))
            .collect::<Result<Vec<RunId>, _>>()?;
        if let Some(first) = runs.first() {
            tx.prepare_cached(
                "UPDATE hook_deliveries SET run_id = ?3 WHERE scan = ?1 AND delivery_id = ?2",
            )?
            .execute(params![scan, delivery_id, first])?;
        }
        tx.commit()?;
        Ok((Claim::New, runs))
    }

    /// Takes over queued run `id` of a push when it is abandoned and never started (no
    /// vendor scan, no page): this process becomes its owner, and runs it as a queued run of
    /// its own ([`Store::claim_queued_run`] then gives it the scan's lease, or a new id when
    /// a later run of the scan overtook it). A push has no later tick of a schedule to run
    /// it again: ended here as an abandoned run, it would never run. `None` when another
    /// process took it first, or it ended or started meanwhile.
    pub fn adopt_queued_run(&mut self, id: RunId) -> Result<Option<RunRow>, StoreError> {
        let tx = self.conn.write_transaction()?;
        if !super::lease::is_abandoned(&tx, id)? {
            return Ok(None);
        }
        register_owner(&tx, &self.owner)?;
        let taken = tx
            .prepare_cached(
                "UPDATE sync_runs SET owner = ?2, owner_pid = ?3
                 WHERE id = ?1 AND vendor_scan_id IS NULL AND pages = 0",
            )?
            .execute(params![id, self.owner.id, std::process::id()])?;
        if taken == 0 {
            return Ok(None);
        }
        let row = read_run(&tx, id)?;
        tx.commit()?;
        Ok(row)
    }

    /// Notes the run a claimed delivery started (or joined), for the answer to a repeat.
    pub fn set_delivery_run(
        &mut self,
        scan: &str,
        delivery_id: &str,
        run: RunId,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE hook_deliveries SET run_id = ?3 WHERE scan = ?1 AND delivery_id = ?2",
            )?
            .execute(params![scan, delivery_id, run])?;
        Ok(())
    }

    /// Forgets a claimed delivery that started nothing (the daemon was stopping), so the
    /// sender's retry is not taken for a replay.
    pub fn release_delivery(&mut self, scan: &str, delivery_id: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM hook_deliveries WHERE scan = ?1 AND delivery_id = ?2")?
            .execute(params![scan, delivery_id])?;
        Ok(())
    }

    /// Deletes a run row that was begun but never got to do anything (no vendor scan, no
    /// page): a webhook run that turned out not to be needed. Returns false, and leaves the
    /// row alone, when the run already did something.
    pub fn discard_unstarted_run(&mut self, run: RunId) -> Result<bool, StoreError> {
        let deleted = self
            .conn
            .prepare_cached(
                "DELETE FROM sync_runs WHERE id = ?1 AND state = 'running'
                   AND vendor_scan_id IS NULL AND pages = 0",
            )?
            .execute(params![run])?;
        Ok(deleted == 1)
    }

    /// The run a delivery is recorded with, if any (tests and diagnostics).
    pub fn delivery_run(&self, scan: &str, delivery_id: &str) -> Result<Option<RunId>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT run_id FROM hook_deliveries WHERE scan = ?1 AND delivery_id = ?2",
            )?
            .query_row(params![scan, delivery_id], |r| r.get(0))
            .optional()?
            .flatten())
    }
}

/// The stored-time text `keep` ago, in the same format as [`now`], so text order is time order.
fn cutoff(keep: Duration) -> String {
    let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    let at = chrono::Utc::now()
        .checked_sub_signed(keep)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RunEnd, RunScope};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        (dir, store)
    }

    fn scope(scan: &str) -> RunScope {
        RunScope {
            scan: scan.into(),
            instance: "ct".into(),
            vendor: "codethreat".into(),
            bind_to: "p".into(),
            branch: Some("main".into()),
            trigger: "webhook".into(),
            ..RunScope::default()
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_delivery_id_is_new_once_then_a_duplicate_with_its_run() {
        let (_d, mut s) = store();
        assert_eq!(s.claim_delivery("web", "d-1", DAY).unwrap(), Claim::New);
        let run = s.begin_run(&scope("web")).unwrap();
        s.set_delivery_run("web", "d-1", run).unwrap();
        match s.claim_delivery("web", "d-1", DAY).unwrap() {
            Claim::Duplicate { run_id, .. } => assert_eq!(run_id, Some(run)),
            Claim::New => panic!("a repeat must be a duplicate"),
        }
        // Another scan, or another id, is a different delivery.
        assert_eq!(s.claim_delivery("api", "d-1", DAY).unwrap(), Claim::New);
        assert_eq!(s.claim_delivery("web", "d-2", DAY).unwrap(), Claim::New);
    }

    #[test]
    fn a_delivery_older_than_the_keep_window_is_forgotten_but_the_newest_of_a_scan_is_kept() {
        let (_d, mut s) = store();
        assert_eq!(s.claim_delivery("web", "d-1", DAY).unwrap(), Claim::New);
        assert_eq!(s.claim_delivery("web", "d-2", DAY).unwrap(), Claim::New);
        s.conn
            .execute(
                "UPDATE hook_deliveries SET received_at = '2000-01-01T00:00:00.000Z'",
                [],
            )
            .unwrap();
        // d-2 is the newest of its scan: kept however old; a replay is still a duplicate.
        assert!(matches!(
            s.claim_delivery("web", "d-2", DAY).unwrap(),
            Claim::Duplicate { .. }
        ));
        // d-1 is old and not the newest: forgotten, so it is new again.
        assert_eq!(s.claim_delivery("web", "d-1", DAY).unwrap(), Claim::New);
        let rows: i64 = s
            .conn
            .query_row("SELECT count(*) FROM hook_deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
    }

    #[test]
    fn a_push_is_recorded_with_its_runs_and_a_gone_nodes_unstarted_run_is_taken_over_once() {
        let db = crate::store::test_db::TestDb::new();
        let (mut a, mut b) = (db.open(), db.open());
        let (claim, runs) = a
            .claim_push("web", "d-1", DAY, &[scope("web"), scope("web@dev")])
            .unwrap();
        assert_eq!(claim, Claim::New);
        assert_eq!(runs.len(), 2);
        assert_eq!(a.delivery_run("web", "d-1").unwrap(), Some(runs[0]));
        let retry = b
            .claim_push("web", "d-1", DAY, &[scope("web"), scope("web@dev")])
            .unwrap();
        assert!(
            matches!(&retry, (Claim::Duplicate { run_id: Some(r), .. }, begun)
                if *r == runs[0] && begun.is_empty()),
            "{retry:?}"
        );
        // A live node's run is its own.
        assert!(b.adopt_queued_run(runs[0]).unwrap().is_none());
        // One of them started (a vendor scan): not a queued run to run again.
        a.set_vendor_scan_id(runs[1], "vs-1").unwrap();
        a.release_owner().unwrap();
        assert!(b.adopt_queued_run(runs[1]).unwrap().is_none());
        let taken = b.adopt_queued_run(runs[0]).unwrap().expect("taken over");
        assert_eq!(taken.id, runs[0]);
        assert!(db.open().adopt_queued_run(runs[0]).unwrap().is_none());
        assert_eq!(
            b.claim_queued_run("web", runs[0]).unwrap(),
            (crate::store::ScanClaim::Claimed, runs[0])
        );
        b.finish_run(runs[0], RunEnd::Succeeded).unwrap();
    }

    #[test]
    fn a_released_delivery_can_be_claimed_again() {
        let (_d, mut s) = store();
        assert_eq!(s.claim_delivery("web", "d-1", DAY).unwrap(), Claim::New);
        s.release_delivery("web", "d-1").unwrap();
        assert_eq!(s.claim_delivery("web", "d-1", DAY).unwrap(), Claim::New);
    }

    #[test]
    fn only_a_run_that_did_nothing_yet_can_be_discarded() {
        let (_d, mut s) = store();
        let idle = s.begin_run(&scope("web")).unwrap();
        s.claim_delivery("web", "d-1", DAY).unwrap();
        s.set_delivery_run("web", "d-1", idle).unwrap();
        assert!(s.discard_unstarted_run(idle).unwrap());
        assert!(s.run(idle).unwrap().is_none());
        assert_eq!(s.delivery_run("web", "d-1").unwrap(), None);

        let started = s.begin_run(&scope("web")).unwrap();
        s.set_vendor_scan_id(started, "vs-1").unwrap();
        assert!(!s.discard_unstarted_run(started).unwrap());
        s.finish_run(started, RunEnd::Failed("x".into())).unwrap();
        assert!(!s.discard_unstarted_run(started).unwrap());
        assert!(s.run(started).unwrap().is_some());
    }

    #[test]
    fn last_success_by_scan_ignores_runs_that_did_not_succeed() {
        let (_d, mut s) = store();
        let ok = s.begin_run(&scope("web")).unwrap();
        s.finish_run(ok, RunEnd::Succeeded).unwrap();
        let bad = s.begin_run(&scope("web")).unwrap();
        s.finish_run(bad, RunEnd::Failed("vendor down".into()))
            .unwrap();
        let failed_only = s.begin_run(&scope("api")).unwrap();
        s.finish_run(failed_only, RunEnd::Failed("x".into()))
            .unwrap();
        let last = s.last_successful_syncs().unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(
            Some(&last["web"]),
            s.run(ok).unwrap().unwrap().finished_at.as_ref()
        );
    }

    #[test]
    fn migrations_apply_in_version_order_and_end_at_the_last_version() {
        let versions: Vec<i64> = super::super::MIGRATIONS.iter().map(|(v, _)| *v).collect();
        assert_eq!(versions.first(), Some(&1));
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        let (_d, s) = store();
        let v: i64 = s
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, *versions.last().unwrap());
    }

    #[test]
    fn a_store_at_version_1_is_brought_up_to_the_last_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(super::super::MIGRATIONS[0].1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.claim_delivery("web", "d", DAY).unwrap(), Claim::New);
    }
}
