//! Runs: begun under the scan's lease, ended once (fixing what a complete listing left out,
//! writing the notifications), read back for `runs` and the scheduler.

use super::*;

/// Columns of a `sync_runs` row, in the order [`run_from_row`] reads them.
pub(super) const RUN_COLUMNS: &str = "id, scan, instance, vendor, bind_to, branch, trigger, state, \
     vendor_scan_id, started_at, finished_at, error, seen, new, open, reopened, fixed, missing, pages";

/// What a write to a running run (a page, its end) needs to know, read in one query when
/// the write transaction begins: on a server each query is a round trip, and a page made
/// five of them before it wrote anything.
pub(super) struct RunContext {
    pub(super) scan_id: i64,
    pub(super) fix_guard: f64,
    /// The store scan's name (`name` or `name@branch`), which suppression rules name.
    pub(super) scan: String,
    /// Whether this process holds the scan's lease for the run right now: only the holder
    /// stores or fixes.
    pub(super) holds_lease: bool,
    /// Whether a run of the scan newer than this one has succeeded: then this run's listing
    /// is older than the scan's truth, and it neither fixes nor creates open findings.
    pub(super) newer_success: bool,
    /// The largest finding and event ids: every row with a higher id was written by this
    /// transaction (it holds the write lock).
    pub(super) findings_before: i64,
    pub(super) events_before: i64,
    /// The scan's present findings (`scans.present_count`, exact as of
    /// `present_checked_at`) and how many of them the run has listed (`listed_present`; a run
    /// changes a row at most once, see `UPSERT_FINDING_SQL`): when the two agree, no
    /// present finding is absent from the run's listing.
    pub(super) present_count: i64,
    pub(super) present_checked_at: Option<String>,
    pub(super) listed_present: i64,
    /// Whether any run of the scan newer than this one exists: its pages may have changed
    /// rows this run listed (a run listed present, then fixed by the vendor's word), so
    /// `listed_present` no longer says how many of them are present.
    pub(super) newer_run: bool,
    /// The first newer run of the scan that stored a page (its `pages` only grow), if any:
    /// this run's listing is no longer the scan's newest word. It stores no more pages and
    /// fixes nothing; the newer run, or the next complete one, decides. Where two findings
    /// share an identity (told apart by their order), a row the newer run stored can stand
    /// in for either, so this run's listing could no longer tell what it lacks, and its
    /// vendor's words (a "resolved") would only be undone by the newer listing.
    pub(super) overtaken_by: Option<RunId>,
    /// The run's counters so far: a page reads its own as the difference its update makes.
    pub(super) counts: RunCounts,
}

pub(super) fn no_such_run(run: RunId) -> StoreError {
    StoreError::Invalid(format!("no sync run with id {run} in the store"))
}

/// The run's context, or an error when the run does not exist, has already ended, or is
/// owned by another process (it adopted the run): a page or an end for such a run is
/// refused. Read inside the caller's write transaction.
pub(super) fn running_context(
    conn: &Db,
    owner: &Owner,
    run: RunId,
) -> Result<RunContext, StoreError> {
    let found = conn
        .prepare_cached(
            "SELECT r.scan_id, r.state, r.owner, r.fix_guard, r.scan,
                    EXISTS (SELECT 1 FROM scan_leases l JOIN scans s ON s.name = l.scan
                            WHERE s.id = r.scan_id AND l.owner = ?2 AND l.run_id = r.id
                              AND l.expires_at > ?3),
                    EXISTS (SELECT 1 FROM sync_runs n
                            WHERE n.scan = r.scan AND n.id > r.id
                              AND n.state = 'succeeded'),
                    (SELECT coalesce(max(id), 0) FROM findings),
                    (SELECT coalesce(max(id), 0) FROM finding_events),
                    s.present_count, s.present_checked_at, r.listed_present,
                    EXISTS (SELECT 1 FROM sync_runs n WHERE n.scan = r.scan AND n.id > r.id),
                    r.seen, r.new, r.open, r.reopened, r.fixed, r.missing, r.pages,
                    (SELECT min(n.id) FROM sync_runs n
                     WHERE n.scan = r.scan AND n.id > r.id AND n.pages > 0)
             FROM sync_runs r JOIN scans s ON s.id = r.scan_id WHERE r.id = ?1",
        )?
        .query_row(params![run, owner.id, now()], |r| {
            let state: String = r.get(1)?;
            let run_owner: Option<String> = r.get(2)?;
            Ok((
                state,
                run_owner,
                RunContext {
                    scan_id: r.get(0)?,
                    fix_guard: r.get(3)?,
                    scan: r.get(4)?,
                    holds_lease: r.get(5)?,
                    newer_success: r.get(6)?,
                    findings_before: r.get(7)?,
                    events_before: r.get(8)?,
                    present_count: r.get(9)?,
                    present_checked_at: r.get(10)?,
                    listed_present: r.get(11)?,
                    newer_run: r.get(12)?,
                    counts: counts_from(r, 13)?,
                    overtaken_by: r.get(20)?,
                },
            ))
        })
        .optional()?;
    let (state, run_owner, ctx) = found.ok_or_else(|| no_such_run(run))?;
    if state != RunState::Running.as_str() {
        return Err(StoreError::Invalid(format!(
            "sync run {run} has already ended ({state}); start a new run"
        )));
    }
    if run_owner.as_deref() != Some(owner.id.as_str()) {
        return Err(StoreError::LeaseLost(run));
    }
    Ok(ctx)
}

pub(super) fn read_run(conn: &Db, id: RunId) -> Result<Option<RunRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = ?1"
    ))?;
    let mut rows = stmt.query(params![id])?;
    match rows.next()? {
        Some(row) => Ok(Some(run_from_row(&row)?)),
        None => Ok(None),
    }
}

pub(super) fn run_from_row(r: &Row<'_>) -> Result<RunRow, StoreError> {
    Ok(RunRow {
        id: r.get(0)?,
        scan: r.get(1)?,
        instance: r.get(2)?,
        vendor: r.get(3)?,
        bind_to: r.get(4)?,
        branch: r.get(5)?,
        trigger: r.get(6)?,
        state: RunState::parse(&r.get::<String>(7)?)?,
        vendor_scan_id: r.get(8)?,
        started_at: r.get(9)?,
        finished_at: r.get(10)?,
        error: r.get(11)?,
        counts: counts_from(r, 12)?,
    })
}

/// A run's counters from `seen, new, open, reopened, fixed, missing, pages`, read from
/// column `first` on.
pub(super) fn counts_from(r: &Row<'_>, first: usize) -> db::Result<RunCounts> {
    let count = |i: usize| -> db::Result<u64> { Ok(r.get::<i64>(first + i)? as u64) };
    Ok(RunCounts {
        seen: count(0)?,
        new: count(1)?,
        open: count(2)?,
        reopened: count(3)?,
        fixed: count(4)?,
        missing: count(5)?,
        pages: count(6)?,
    })
}

impl Store {
    /// Records the start of a run and takes its scan's lease, in one transaction:
    /// [`StoreError::ScanBusy`] (and nothing written) when another live run holds it.
    pub fn begin_run(&mut self, scope: &RunScope) -> Result<RunId, StoreError> {
        self.begin(scope, true, None)
    }

    /// [`Store::begin_run`] for a run that serves a due time: when another process's run of
    /// the scan with one of `triggers` started at or after `since` and succeeded, nothing is
    /// begun and that run's id is returned as `Err`. The check and the claim are one
    /// transaction, so the other run cannot end between them.
    pub fn begin_due_run(
        &mut self,
        scope: &RunScope,
        since: chrono::DateTime<chrono::Utc>,
        triggers: &[&str],
    ) -> Result<Result<RunId, RunId>, StoreError> {
        match self.begin(scope, true, Some((since, triggers))) {
            Err(StoreError::ServedBy(run)) => Ok(Err(run)),
            other => other.map(Ok),
        }
    }

    /// Records a run that will wait for its scan's lease (the listener answers a push with
    /// the run id before the run's turn comes): take the lease with [`Store::claim_scan`].
    pub fn begin_queued_run(&mut self, scope: &RunScope) -> Result<RunId, StoreError> {
        self.begin(scope, false, None)
    }

    fn begin(
        &mut self,
        scope: &RunScope,
        claim: bool,
        due: Option<(chrono::DateTime<chrono::Utc>, &[&str])>,
    ) -> Result<RunId, StoreError> {
        let tx = self.conn.write_transaction()?;
        let run = begin_in(&tx, &self.owner, scope, claim, due)?;
        tx.commit()?;
        Ok(run)
    }

    /// Records the vendor's scan id on the run before polling starts, so a restarted daemon
    /// can resume polling that vendor scan instead of starting another.
    pub fn set_vendor_scan_id(
        &mut self,
        run: RunId,
        vendor_scan_id: &str,
    ) -> Result<(), StoreError> {
        let changed = self
            .conn
            .prepare_cached("UPDATE sync_runs SET vendor_scan_id = ?2 WHERE id = ?1")?
            .execute(params![run, vendor_scan_id])?;
        if changed == 0 {
            return Err(no_such_run(run));
        }
        Ok(())
    }

    /// Ends a run in one transaction, releases its scan's lease and writes its webhook
    /// notifications (built from the run's finding events, so they exist exactly when the
    /// run's end does, and include what pages stored before a crash and an adoption).
    ///
    /// Only [`RunEnd::Succeeded`] (a complete listing, read to its end) fixes anything, and
    /// only while the run holds the lease and no newer run of the scan has succeeded (a run
    /// adopted late imports without fixing) or stored a page (`RunContext::overtaken_by`: the
    /// run ends `interrupted`). Findings it did not list become `fixed`, unless
    /// the mass-fix guard trips: more than the run's `fix_guard` share of the scan's present
    /// findings (above [`FIX_GUARD_MIN_FINDINGS`]), or every one of them. Then they become
    /// `missing`, and only the next complete run that still lacks them fixes them; findings
    /// already `missing` are fixed either way (their second absence).
    pub fn finish_run(&mut self, run: RunId, end: RunEnd) -> Result<RunRow, StoreError> {
        self.looked_up.forget(run);
        let tx = self.conn.write_transaction()?;
        let at = now();
        let ctx = running_context(&tx, &self.owner, run)?;
        let (mut state, mut error) = match end {
            RunEnd::Succeeded => (RunState::Succeeded, None),
            RunEnd::Failed(e) => (RunState::Failed, Some(e)),
            RunEnd::Interrupted(e) => (RunState::Interrupted, Some(e)),
            RunEnd::TimedOut(e) => (RunState::TimedOut, Some(e)),
        };
        if state == RunState::Succeeded && !ctx.holds_lease {
            state = RunState::Interrupted;
            error = Some(
                "the run lost its scan's lease (its heartbeat expired and another process \
                 took the scan); nothing was marked fixed"
                    .into(),
            );
        }
        if let (RunState::Succeeded, false, Some(newer)) =
            (state, ctx.newer_success, ctx.overtaken_by)
        {
            state = RunState::Interrupted;
            error = Some(format!(
                "run {newer} of this scan, newer, stored findings first: this older listing \
                 stored nothing after that and marked nothing fixed (the newer run decides)"
            ));
        }
        let (mut fixed, mut missing) = (0, 0);
        if state == RunState::Succeeded {
            if ctx.newer_success {
                tracing::info!(
                    run_id = run,
                    "a newer run of this scan succeeded first: this run's listing fixes nothing"
                );
            } else {
                (fixed, missing) = fix_absent(&tx, &ctx, run, &at)?;
            }
        }
        tx.prepare_cached(
            "UPDATE sync_runs SET state = ?2, finished_at = ?3, error = ?4, fixed = fixed + ?5,
                 missing = missing + ?6, notified_at = ?3
             WHERE id = ?1",
        )?
        .execute(params![
            run,
            state.as_str(),
            at,
            error,
            fixed as i64,
            missing as i64
        ])?;
        lease::release_in(&tx, &self.owner, ctx.scan_id, run)?;
        let row = read_run(&tx, run)?.ok_or_else(|| no_such_run(run))?;
        if let Some(notifications) = &self.notifications {
            let min_severity: Option<String> = tx
                .prepare_cached("SELECT min_severity FROM sync_runs WHERE id = ?1")?
                .query_row(params![run], |r| r.get(0))?;
            let min_severity = min_severity.and_then(|w| w.parse::<Severity>().ok());
            outbox::write_notifications(&tx, notifications, ctx.scan_id, &row, &at, min_severity)?;
        }
        tx.commit()?;
        Ok(row)
    }

    /// Lets go of run `run` without ending it: it stays `running` with its vendor scan id,
    /// and its scan's lease is released, so that a daemon adopts it (`scan --async`, a stop
    /// while the vendor scan runs). The run's owner row goes when the process says goodbye
    /// ([`Store::release_owner`]) or its heartbeat expires.
    pub fn detach_run(&mut self, run: RunId) -> Result<(), StoreError> {
        let tx = self.conn.write_transaction()?;
        let ctx = running_context(&tx, &self.owner, run)?;
        lease::release_in(&tx, &self.owner, ctx.scan_id, run)?;
        tx.commit()?;
        Ok(())
    }

    /// One run by id.
    pub fn run(&self, id: RunId) -> Result<Option<RunRow>, StoreError> {
        read_run(&self.conn, id)
    }

    /// Runs, newest first, of one scan or of all.
    pub fn runs(&self, scan: Option<&str>, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = match scan {
            Some(_) => format!(
                "SELECT {RUN_COLUMNS} FROM sync_runs WHERE scan = ?1 ORDER BY id DESC LIMIT ?2"
            ),
            None => format!(
                "SELECT {RUN_COLUMNS} FROM sync_runs WHERE CAST(?1 AS TEXT) IS NULL ORDER BY id DESC LIMIT ?2"
            ),
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![scan, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(run_from_row(&row)?);
        }
        Ok(out)
    }

    /// The newest run of a scan, whatever its state.
    pub fn last_run(&self, scan: &str) -> Result<Option<RunRow>, StoreError> {
        Ok(self.runs(Some(scan), 1)?.into_iter().next())
    }
}

/// [`Store::begin_run`] (`claim`) or [`Store::begin_queued_run`], inside the caller's write
/// transaction (a push's runs are begun with its delivery, see [`Store::claim_push`]).
pub(super) fn begin_in(
    tx: &Db,
    owner: &Owner,
    scope: &RunScope,
    claim: bool,
    due: Option<(chrono::DateTime<chrono::Utc>, &[&str])>,
) -> Result<RunId, StoreError> {
    let pid = std::process::id();
    // Read once the write lock is held: a run that waited for it (another process ending
    // its run) must not appear to have started before that run ended.
    let at = now();
    if let Some((since, triggers)) = due {
        if let Some(run) = lease::success_since(tx, owner, &scope.scan, since, triggers)? {
            return Err(StoreError::ServedBy(run));
        }
    }
    if !claim {
        // A claim registers the owner (the row that keeps the run from looking abandoned).
        lease::register_owner(tx, owner)?;
    }
    let instance_id: i64 = tx
        .prepare_cached(
            "INSERT INTO instances (name, vendor, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET vendor = excluded.vendor
             RETURNING id",
        )?
        .query_row(params![scope.instance, scope.vendor, at], |r| r.get(0))?;
    let scan_id: i64 = tx
        .prepare_cached(
            "INSERT INTO scans (name, instance_id, bind_to, branch, created_at,
                 present_checked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT (name) DO UPDATE SET instance_id = excluded.instance_id,
                 bind_to = excluded.bind_to, branch = excluded.branch
             RETURNING id",
        )?
        .query_row(
            params![scope.scan, instance_id, scope.bind_to, scope.branch, at],
            |r| r.get(0),
        )?;
    let run: RunId = tx
        .prepare_cached(
            "INSERT INTO sync_runs (scan_id, scan, instance, vendor, bind_to, branch,
                 trigger, state, owner_pid, owner, started_at, fix_guard, min_severity)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9, ?10, ?11, ?12)
             RETURNING id",
        )?
        .query_row(
            params![
                scan_id,
                scope.scan,
                scope.instance,
                scope.vendor,
                scope.bind_to,
                scope.branch,
                scope.trigger,
                pid,
                owner.id,
                at,
                scope.fix_guard,
                scope.min_severity.map(|s| s.as_str()),
            ],
            |r| r.get(0),
        )?;
    if claim {
        if let ScanClaim::Held {
            run_id,
            owner_label,
            ..
        } = lease::claim_in(tx, owner, &scope.scan, Some(run))?
        {
            return Err(StoreError::ScanBusy {
                scan: scope.scan.clone(),
                run_id,
                owner: owner_label,
            });
        }
    }
    Ok(run)
}
