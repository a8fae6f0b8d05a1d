//! One runner per scan, held in the store: the `owners` and `scan_leases` tables.
//!
//! Every process that runs scans has an owner id (random per process start, never a pid: pids
//! repeat across containers and PID namespaces and mean nothing on another host) with a
//! heartbeat in `owners`. A run of a store scan (`name` or `name@branch`) holds that scan's row
//! in `scan_leases`, claimed in one immediate transaction when it is free, renewed by its
//! owner's heartbeat, deleted when the run ends. Liveness is the expiry time and nothing
//! else:
//! - a second runner of the scan, from any process, waits while the lease is held;
//! - a page or the end of a run is stored only while its process holds the lease (checked in
//!   the same transaction), so a run that lost its lease stores nothing more;
//! - a `running` run whose owner's heartbeat expired (or who said goodbye, see
//!   [`Store::release_owner`]) is abandoned: a daemon adopts it ([`Store::adopt_run`]) and
//!   polls the same vendor scan, or ends it ([`Store::end_abandoned_run`]).

use super::db::{params, Db, OptionalExtension};
use super::{now, read_run, stamp, RunId, RunRow, Store, StoreError};
use std::time::Duration;

/// How long a lease and an owner's heartbeat stay valid without renewal ("about a minute").
/// `SCANSYNC_LEASE_TTL_MS` shortens it for tests that kill processes and wait for adoption.
pub fn lease_ttl() -> Duration {
    std::env::var("SCANSYNC_LEASE_TTL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms >= 100)
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(45))
}

/// How often a process renews its heartbeat and leases: a third of the TTL, so two missed
/// beats in a row still leave it alive.
pub fn heartbeat_every() -> Duration {
    lease_ttl() / 3
}

/// This process as the store knows it.
#[derive(Debug, Clone)]
pub struct Owner {
    /// Random, unique per process start.
    pub id: String,
    /// `node:pid` (the node: `[daemon] node_name`, else the host name), for people reading `scan_leases` or "waiting for" messages.
    pub label: String,
}

impl Owner {
    pub(super) fn new() -> Owner {
        Owner {
            id: uuid::Uuid::new_v4().simple().to_string(),
            label: format!("{}:{}", crate::config::node(), std::process::id()),
        }
    }
}

/// What [`Store::claim_scan`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanClaim {
    /// The lease is this run's now.
    Claimed,
    /// Another live run holds it.
    Held {
        run_id: Option<RunId>,
        owner_label: String,
        expires_at: String,
    },
}

fn expiry_from_now() -> String {
    let ttl = chrono::Duration::from_std(lease_ttl()).unwrap_or(chrono::Duration::seconds(45));
    stamp(chrono::Utc::now() + ttl)
}

/// Writes (or renews) this process's `owners` row.
pub(super) fn register_owner(conn: &Db, owner: &Owner) -> Result<(), StoreError> {
    let at = now();
    conn.prepare_cached(
        "INSERT INTO owners (owner, label, started_at, heartbeat_at, expires_at)
         VALUES (?1, ?2, ?3, ?3, ?4)
         ON CONFLICT (owner) DO UPDATE SET heartbeat_at = ?3, expires_at = ?4",
    )?
    .execute(params![owner.id, owner.label, at, expiry_from_now()])?;
    Ok(())
}

/// What [`Store::due_run_taken`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DueRunTaken {
    /// This run (another process's) served the due time.
    Served(RunId),
    /// Another live run holds the scan's lease.
    Held {
        run_id: Option<RunId>,
        owner_label: String,
    },
}

/// The lease of `scan` when another live run holds it (not expired, its run not ended, and
/// not `run` of `owner`): what keeps `run` from claiming it.
fn held_by_other(
    conn: &Db,
    owner: &Owner,
    scan: &str,
    run: Option<RunId>,
) -> Result<Option<ScanClaim>, StoreError> {
    let current: Option<(String, Option<RunId>, String, String, bool)> = conn
        .prepare_cached(
            "SELECT l.owner, l.run_id, l.expires_at, coalesce(o.label, l.owner),
                    l.run_id IS NOT NULL AND coalesce(r.state != 'running', TRUE)
             FROM scan_leases l LEFT JOIN owners o ON o.owner = l.owner
                  LEFT JOIN sync_runs r ON r.id = l.run_id
             WHERE l.scan = ?1",
        )?
        .query_row(params![scan], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    Ok(
        current.and_then(|(holder, holder_run, expires_at, label, run_ended)| {
            let mine = holder == owner.id && holder_run == run;
            (!mine && expires_at > now() && !run_ended).then_some(ScanClaim::Held {
                run_id: holder_run,
                owner_label: label,
                expires_at,
            })
        }),
    )
}

/// Takes the lease of `scan` for `run` when it is free (absent, expired, or left by a run that
/// ended), inside the caller's immediate transaction.
pub(super) fn claim_in(
    conn: &Db,
    owner: &Owner,
    scan: &str,
    run: Option<RunId>,
) -> Result<ScanClaim, StoreError> {
    if let Some(held) = held_by_other(conn, owner, scan, run)? {
        return Ok(held);
    }
    let at = now();
    register_owner(conn, owner)?;
    conn.prepare_cached(
        "INSERT INTO scan_leases (scan, owner, run_id, acquired_at, heartbeat_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)
         ON CONFLICT (scan) DO UPDATE SET owner = ?2, run_id = ?3, acquired_at = ?4,
             heartbeat_at = ?4, expires_at = ?5",
    )?
    .execute(params![scan, owner.id, run, at, expiry_from_now()])?;
    Ok(ScanClaim::Claimed)
}

/// Deletes `owner`'s lease of the scan with id `scan_id` when `run` holds it (not when another
/// run of this process does: a queued run that ends unstarted leaves it), inside the caller's
/// transaction.
pub(super) fn release_in(
    conn: &Db,
    owner: &Owner,
    scan_id: i64,
    run: RunId,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM scan_leases
         WHERE owner = ?1 AND run_id = ?3 AND scan = (SELECT name FROM scans WHERE id = ?2)",
    )?
    .execute(params![owner.id, scan_id, run])?;
    Ok(())
}

/// The newest run of `scan` that a process other than `owner` started at or after `since`
/// with one of `triggers` and that succeeded: it served a due time that a run of `owner` was
/// about to serve again (see [`Store::begin_due_run`]).
pub(super) fn success_since(
    conn: &Db,
    owner: &Owner,
    scan: &str,
    since: chrono::DateTime<chrono::Utc>,
    triggers: &[&str],
) -> Result<Option<RunId>, StoreError> {
    let marks: Vec<String> = (0..triggers.len()).map(|i| format!("?{}", i + 4)).collect();
    let mut args: Vec<super::db::Value> = vec![
        scan.to_string().into(),
        stamp(since).into(),
        owner.id.clone().into(),
    ];
    args.extend(triggers.iter().map(|t| t.to_string().into()));
    Ok(conn
        .prepare_cached(&format!(
            "SELECT max(id) FROM sync_runs
             WHERE scan = ?1 AND state = 'succeeded' AND started_at >= ?2
               AND owner IS NOT ?3 AND trigger IN ({})",
            marks.join(", ")
        ))?
        .query_row(super::db::params_from_iter(&args), |r| r.get(0))?)
}

/// Ids of `running` runs whose owner is gone (no `owners` row, or an expired one), oldest
/// first.
fn abandoned_ids(conn: &Db) -> Result<Vec<RunId>, StoreError> {
    let ids = conn
        .prepare_cached(
            "SELECT r.id FROM sync_runs r LEFT JOIN owners o ON o.owner = r.owner
             WHERE r.state = 'running' AND (o.owner IS NULL OR o.expires_at <= ?1)
             ORDER BY r.id",
        )?
        .query_map(params![now()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

pub(super) fn is_abandoned(conn: &Db, id: RunId) -> Result<bool, StoreError> {
    let found: Option<i64> = conn
        .prepare_cached(
            "SELECT 1 FROM sync_runs r LEFT JOIN owners o ON o.owner = r.owner
             WHERE r.id = ?1 AND r.state = 'running'
               AND (o.owner IS NULL OR o.expires_at <= ?2)",
        )?
        .query_row(params![id, now()], |r| r.get(0))
        .optional()?;
    Ok(found.is_some())
}

impl Store {
    /// This process's owner id and label.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Claims the lease of `scan` for queued run `run` (begun with
    /// [`Store::begin_queued_run`] before it waited for its turn). Returns the claim and the
    /// run that goes on.
    ///
    /// Run ids order listings: the lifecycle takes a higher id for a newer listing (see
    /// `RunContext::newer_success` and `touched_run_id`). A run begun before it waited
    /// would break that when another process began a run of the scan meanwhile: this run
    /// reads the vendor now, yet would count as older. So it goes on as a new run (its row
    /// copied, begun now), and `run` ends `interrupted` naming it; it stored nothing, so
    /// nothing is lost.
    pub fn claim_queued_run(
        &mut self,
        scan: &str,
        run: RunId,
    ) -> Result<(ScanClaim, RunId), StoreError> {
        let tx = self.conn.write_transaction()?;
        let claim = claim_in(&tx, &self.owner, scan, Some(run))?;
        if claim != ScanClaim::Claimed {
            tx.commit()?;
            return Ok((claim, run));
        }
        let overtaken: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM sync_runs WHERE scan = ?1 AND id > ?2)")?
            .query_row(params![scan, run], |r| r.get(0))?;
        if !overtaken {
            tx.commit()?;
            return Ok((claim, run));
        }
        let at = now();
        let next: RunId = tx
            .prepare_cached(
                "INSERT INTO sync_runs (scan_id, scan, instance, vendor, bind_to, branch,
                     trigger, state, owner_pid, owner, started_at, fix_guard, min_severity)
                 SELECT scan_id, scan, instance, vendor, bind_to, branch, trigger, 'running',
                        ?2, ?3, ?4, fix_guard, min_severity
                 FROM sync_runs WHERE id = ?1
                 RETURNING id",
            )?
            .query_row(params![run, std::process::id(), self.owner.id, at], |r| {
                r.get(0)
            })?;
        tx.prepare_cached(
            "UPDATE sync_runs SET state = 'interrupted', finished_at = ?2, notified_at = ?2,
                 error = ?3
             WHERE id = ?1",
        )?
        .execute(params![
            run,
            at,
            format!(
                "its turn came after a run of the scan begun later; it went on as run {next}, \
                 which reads the vendor's listing as of now"
            )
        ])?;
        tx.prepare_cached("UPDATE scan_leases SET run_id = ?2 WHERE scan = ?1")?
            .execute(params![scan, next])?;
        tx.commit()?;
        Ok((ScanClaim::Claimed, next))
    }

    /// Whether a due run of `scan` is served already (a run of another process that began
    /// at or after `since` with one of `triggers` succeeded) or under way (another live run
    /// holds the lease). A read without the write lock, so only a hint that
    /// [`Store::begin_due_run`] confirms: with several daemons on one store most tries of a
    /// due run meet a run another node finished or holds, and a read spares them (and the
    /// runs that do start) the store-wide write lock.
    pub fn due_run_taken(
        &self,
        scan: &str,
        since: chrono::DateTime<chrono::Utc>,
        triggers: &[&str],
    ) -> Result<Option<DueRunTaken>, StoreError> {
        if let Some(run) = success_since(&self.conn, &self.owner, scan, since, triggers)? {
            return Ok(Some(DueRunTaken::Served(run)));
        }
        Ok(match held_by_other(&self.conn, &self.owner, scan, None)? {
            Some(ScanClaim::Held {
                run_id,
                owner_label,
                ..
            }) => Some(DueRunTaken::Held {
                run_id,
                owner_label,
            }),
            _ => None,
        })
    }

    /// Who holds `scan`'s lease now, if anyone (a read, for "waiting for run N" messages).
    pub fn scan_lease(&self, scan: &str) -> Result<Option<ScanClaim>, StoreError> {
        let at = now();
        Ok(self
            .conn
            .prepare_cached(
                "SELECT l.run_id, coalesce(o.label, l.owner), l.expires_at
                 FROM scan_leases l LEFT JOIN owners o ON o.owner = l.owner
                 WHERE l.scan = ?1 AND l.expires_at > ?2",
            )?
            .query_row(params![scan, at], |r| {
                Ok(ScanClaim::Held {
                    run_id: r.get(0)?,
                    owner_label: r.get(1)?,
                    expires_at: r.get(2)?,
                })
            })
            .optional()?)
    }

    /// Renews this process's heartbeat and every lease it holds. Returns the scans whose
    /// lease it no longer holds although one of its runs of them is `running` (another
    /// process took them after they expired): those runs must stop storing.
    pub fn heartbeat(&mut self) -> Result<Vec<String>, StoreError> {
        let tx = self.conn.write_transaction()?;
        register_owner(&tx, &self.owner)?;
        let at = now();
        tx.prepare_cached(
            "UPDATE scan_leases SET heartbeat_at = ?2, expires_at = ?3 WHERE owner = ?1",
        )?
        .execute(params![self.owner.id, at, expiry_from_now()])?;
        let lost: Vec<String> = tx
            .prepare_cached(
                "SELECT r.scan FROM sync_runs r
                 WHERE r.state = 'running' AND r.owner = ?1
                   AND EXISTS (SELECT 1 FROM scan_leases l
                               WHERE l.scan = r.scan AND l.owner != ?1 AND l.run_id IS NOT r.id)",
            )?
            .query_map(params![self.owner.id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        tx.commit()?;
        Ok(lost)
    }

    /// Says goodbye: deletes this process's leases and `owners` row, so the runs it leaves
    /// `running` on purpose (`scan --async`, a stop while a vendor scan runs) are adopted by
    /// a daemon at once instead of after the heartbeat expires.
    pub fn release_owner(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.write_transaction()?;
        tx.prepare_cached("DELETE FROM scan_leases WHERE owner = ?1")?
            .execute(params![self.owner.id])?;
        tx.prepare_cached("DELETE FROM owners WHERE owner = ?1")?
            .execute(params![self.owner.id])?;
        tx.commit()?;
        Ok(())
    }

    /// `running` runs whose owner is gone (`scansync scan --async` and `--timeout` and a
    /// stopped process leave theirs on purpose, a killed process by accident), oldest first,
    /// unchanged. Read-only. Take one over with [`Store::adopt_run`] or end it with
    /// [`Store::end_abandoned_run`].
    pub fn abandoned_runs(&self) -> Result<Vec<RunRow>, StoreError> {
        abandoned_ids(&self.conn)?
            .into_iter()
            .map(|id| read_run(&self.conn, id)?.ok_or_else(|| super::no_such_run(id)))
            .collect()
    }

    /// Takes run `id` over when it is still abandoned and its scan's lease is free: this
    /// process becomes its owner and holds the lease, and the run goes on under the same id
    /// (its stored pages and events stay its own). `Ok(None)` when another process took it
    /// first or it ended; `Ok(Some(Err(held)))` when it must wait for the scan's lease.
    pub fn adopt_run(
        &mut self,
        id: RunId,
    ) -> Result<Option<Result<RunRow, ScanClaim>>, StoreError> {
        let tx = self.conn.write_transaction()?;
        if !is_abandoned(&tx, id)? {
            return Ok(None);
        }
        let row = read_run(&tx, id)?.ok_or_else(|| super::no_such_run(id))?;
        let claim = claim_in(&tx, &self.owner, &row.scan, Some(id))?;
        if claim != ScanClaim::Claimed {
            return Ok(Some(Err(claim)));
        }
        tx.prepare_cached("UPDATE sync_runs SET owner = ?2 WHERE id = ?1")?
            .execute(params![id, self.owner.id])?;
        tx.commit()?;
        Ok(Some(Ok(row)))
    }

    /// Ends abandoned run `id` as `interrupted` with `reason` (nothing fixed; the findings
    /// and events it stored stay, and their notifications are written). `None` when it is
    /// no longer abandoned.
    pub fn end_abandoned_run(
        &mut self,
        id: RunId,
        reason: &str,
    ) -> Result<Option<RunRow>, StoreError> {
        {
            let tx = self.conn.write_transaction()?;
            if !is_abandoned(&tx, id)? {
                return Ok(None);
            }
            tx.prepare_cached("UPDATE sync_runs SET owner = ?2 WHERE id = ?1")?
                .execute(params![id, self.owner.id])?;
            register_owner(&tx, &self.owner)?;
            tx.commit()?;
        }
        let row = self.finish_run(id, super::RunEnd::Interrupted(reason.to_owned()))?;
        Ok(Some(row))
    }
}
