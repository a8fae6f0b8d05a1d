//! The `webhook_outbox` table: notifications written when a run ends, and the bookkeeping of
//! their delivery (see [`crate::webhooks`] for the whole story).
//!
//! Which notifications a run produces:
//! - For each configured webhook ([`Route`]) whose `scans` include the run's scan, and for
//!   each `findings.*` event it wants: one notification when at least one finding of that
//!   kind passes its `min_severity`, listing the worst [`MAX_FINDINGS`] and counting the rest.
//!   They come from the run's finding events (`created` as `new`, `reopened`, `fixed`), not
//!   from the rows' current state, so a run that a crash cut short and a daemon adopted still
//!   announces exactly what changed over its whole life. A finding created already fixed or
//!   triaged (the vendor's word, or an older run adopted late) is not announced as new. `findings.fixed` includes what the vendor
//!   called resolved; findings the guard held as `missing` are not announced until fixed.
//!   The scan's own `min_severity` (recorded on the run) filters too, like the webhook's.
//! - `run.failed` when the run ended `failed` or `timed_out`.

use super::db::{params, params_from_iter, Db, Row};
use super::{
    finding_from_row, stamp, FindingRow, RunId, RunRow, RunState, ScanRows, Store, StoreError,
    FINDING_COLUMNS, SEVERITY_RANK_SQL,
};
use crate::config::{EventType, Route};
use crate::finding::Severity;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// The most findings one notification lists, worst first; the rest are only counted.
pub const MAX_FINDINGS: usize = 100;

/// Writes the body of a notification: the event, the ended run, the time, the matching
/// findings (worst first, at most [`MAX_FINDINGS`]) and how many matched in all. The store
/// finds what to notify; the format is the caller's (`webhooks::payload::compose`).
pub type NotificationBody = fn(EventType, &RunRow, &str, &[FindingRow], u64) -> String;

/// Which webhooks a run's end notifies, and how their bodies are written.
#[derive(Debug, Clone)]
pub(super) struct Notifications {
    pub(super) routes: Vec<Route>,
    pub(super) body: NotificationBody,
}

/// A pending notification, as the delivery task needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Row id (internal).
    pub id: i64,
    /// Sent as `webhook-id`.
    pub msg_id: String,
    pub webhook: String,
    pub event_type: String,
    pub run_id: Option<RunId>,
    /// The JSON body, sent as is.
    pub payload: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// Attempts started so far.
    pub attempts: u32,
    /// RFC 3339 UTC; the claim compares against it.
    pub next_attempt_at: String,
}

/// A row of the outbox as `scansync webhook pending` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutboxRow {
    pub msg_id: String,
    pub webhook: String,
    pub event_type: String,
    pub run_id: Option<RunId>,
    /// `pending`, `delivered` or `gave_up`.
    pub state: String,
    pub attempts: u32,
    pub created_at: String,
    pub next_attempt_at: Option<String>,
    pub last_attempt_at: Option<String>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
    pub gave_up_at: Option<String>,
}

/// Findings of one event kind for one route: the first [`MAX_FINDINGS`] (worst first) and
/// how many there are in all.
pub(super) struct Matching {
    rows: Vec<FindingRow>,
    total: u64,
}

/// Which findings an event is about, as a condition on `f` (`?2` = run id): those with an
/// event of that kind in the run (index `finding_events_by_run`). A finding triaged from
/// its first sighting (a rule, a branch inheriting the scan's triage) is not news. Each
/// announcement must still be true when the run ends: a run that ends late (adopted after a
/// newer run fixed what it created, or reopened what its page fixed by the vendor's word)
/// would otherwise announce "new" after the newer run's "fixed", or "fixed" after its
/// "reopened".
fn event_condition(event: EventType) -> Option<&'static str> {
    match event {
        EventType::FindingsNew => Some(
            "f.state NOT IN ('fixed', 'false_positive', 'accepted')
             AND f.id IN (SELECT finding_id FROM finding_events
                      WHERE run_id = ?2 AND kind = 'created' AND new_value = 'new')",
        ),
        EventType::FindingsReopened => Some(
            "f.state <> 'fixed' AND f.id IN (SELECT finding_id FROM finding_events
                      WHERE run_id = ?2 AND kind = 'reopened')",
        ),
        EventType::FindingsFixed => Some(
            "f.state = 'fixed' AND f.id IN (SELECT finding_id FROM finding_events
                      WHERE run_id = ?2 AND kind = 'fixed')",
        ),
        EventType::RunFailed | EventType::Ping => None,
    }
}

fn matching(
    conn: &Db,
    event: EventType,
    scan_id: i64,
    run: RunId,
    min_severity: Option<Severity>,
) -> Result<Matching, StoreError> {
    let Some(condition) = event_condition(event) else {
        return Ok(Matching {
            rows: Vec::new(),
            total: 0,
        });
    };
    let words: Vec<&str> = Severity::ALL
        .iter()
        .filter(|s| min_severity.is_none_or(|min| **s >= min))
        .map(|s| s.as_str())
        .collect();
    let marks: Vec<String> = (0..words.len()).map(|i| format!("?{}", i + 3)).collect();
    let severity_in = format!("f.severity IN ({})", marks.join(", "));
    let mut args: Vec<super::db::Value> = vec![scan_id.into(), run.into()];
    args.extend(words.iter().map(|w| super::db::Value::from(w.to_string())));
    // The scan's rows in id order where they are dense (see `ScanRows`): a walk along the
    // dedup index reads a large scan's rows in random order.
    let scan_rows = ScanRows::of(conn, scan_id)?;
    let in_scan = scan_rows.sql_on(
        "f.",
        "?1",
        &format!("?{}", args.len() + 1),
        &format!("?{}", args.len() + 2),
    );
    args.extend([scan_rows.first.into(), scan_rows.last.into()]);

    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM findings f WHERE {in_scan} AND {condition} AND {severity_in}"
        ))?
        .query_row(params_from_iter(args.iter()), |r| r.get(0))?;
    if total == 0 {
        return Ok(Matching {
            rows: Vec::new(),
            total: 0,
        });
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FINDING_COLUMNS} FROM findings f
         JOIN scans s ON s.id = f.scan_id
         JOIN instances i ON i.id = s.instance_id
         WHERE {in_scan} AND {condition} AND {severity_in}
         ORDER BY {SEVERITY_RANK_SQL} DESC, f.fingerprint
         LIMIT {MAX_FINDINGS}"
    ))?;
    let mut rows = stmt.query(params_from_iter(args.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(finding_from_row(&row)?);
    }
    Ok(Matching {
        rows: out,
        total: total as u64,
    })
}

/// Writes the notifications of an ended run (see the module docs), inside `finish_run`'s
/// transaction, after the run's last state changes. `min_severity` is the scan's (recorded
/// on the run). Returns how many rows were written.
pub(super) fn write_notifications(
    conn: &Db,
    notifications: &Notifications,
    scan_id: i64,
    row: &RunRow,
    at: &str,
    min_severity: Option<Severity>,
) -> Result<usize, StoreError> {
    let mut written = 0;
    for route in &notifications.routes {
        if !route.wants_scan(&row.scan, row.branch.as_deref()) {
            continue;
        }
        for event in EventType::ROUTABLE {
            if !route.wants(event) {
                continue;
            }
            let m = match event {
                EventType::RunFailed => {
                    if !matches!(row.state, RunState::Failed | RunState::TimedOut) {
                        continue;
                    }
                    Matching {
                        rows: Vec::new(),
                        total: 0,
                    }
                }
                _ => {
                    let min = route.min_severity.max(min_severity);
                    let m = matching(conn, event, scan_id, row.id, min)?;
                    if m.total == 0 {
                        continue;
                    }
                    m
                }
            };
            let body = (notifications.body)(event, row, at, &m.rows, m.total);
            insert(conn, &route.name, event, row.id, &body, at)?;
            written += 1;
        }
    }
    Ok(written)
}

fn insert(
    conn: &Db,
    webhook: &str,
    event: EventType,
    run: RunId,
    body: &str,
    at: &str,
) -> Result<(), StoreError> {
    let msg_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    conn.prepare_cached(
        "INSERT INTO webhook_outbox (msg_id, webhook, event_type, run_id, payload, created_at,
             next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![msg_id, webhook, event.as_str(), run, body, at])?;
    Ok(())
}

const MESSAGE_COLUMNS: &str = "id, msg_id, webhook, event_type, run_id, payload, created_at, \
     attempts, next_attempt_at";

fn message_from_row(r: &Row<'_>) -> super::db::Result<OutboxMessage> {
    Ok(OutboxMessage {
        id: r.get(0)?,
        msg_id: r.get(1)?,
        webhook: r.get(2)?,
        event_type: r.get(3)?,
        run_id: r.get(4)?,
        payload: r.get(5)?,
        created_at: r.get(6)?,
        attempts: r.get::<i64>(7)?.clamp(0, u32::MAX as i64) as u32,
        next_attempt_at: r.get::<Option<String>>(8)?.unwrap_or_default(),
    })
}

impl Store {
    /// The webhooks `finish_run` writes notifications for (none until this is called: a
    /// store opened by a read-only command writes none). Set from the config by
    /// the sync context, again on every reload. `body` writes each notification.
    pub fn set_webhook_routes(&mut self, routes: Vec<Route>, body: NotificationBody) {
        self.notifications = if routes.is_empty() {
            None
        } else {
            Some(Notifications { routes, body })
        };
    }

    /// Pending notifications due at `now`, oldest due first, at most `limit`.
    pub fn due_webhook_messages(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM webhook_outbox
             WHERE state = 'pending' AND next_attempt_at <= ?1
             ORDER BY next_attempt_at, id LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![stamp(now), limit], message_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// When the next pending notification is due (`None`: nothing pending).
    pub fn next_webhook_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next: Option<String> = self.conn.query_row(
            "SELECT min(next_attempt_at) FROM webhook_outbox WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?;
        Ok(next
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    /// Takes `message` for one attempt: counts the attempt and pushes its due time to
    /// `lease_until`, so no other process sends it meanwhile and a crash mid-attempt leaves
    /// it due again at `lease_until`. False when someone else took it first (its due time is
    /// no longer the one read) or it is no longer pending.
    pub fn claim_webhook_message(
        &mut self,
        message: &OutboxMessage,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE webhook_outbox
                 SET attempts = attempts + 1, last_attempt_at = ?3, next_attempt_at = ?4
                 WHERE id = ?1 AND state = 'pending' AND next_attempt_at = ?2",
            )?
            .execute(params![
                message.id,
                message.next_attempt_at,
                stamp(now),
                stamp(lease_until)
            ])?;
        Ok(changed == 1)
    }

    /// The receiver answered 2xx.
    pub fn webhook_delivered(
        &mut self,
        id: i64,
        status: u16,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE webhook_outbox
                 SET state = 'delivered', delivered_at = ?3, last_status = ?2, last_error = NULL,
                     next_attempt_at = NULL
                 WHERE id = ?1",
            )?
            .execute(params![id, status, stamp(now)])?;
        Ok(())
    }

    /// An attempt failed; the next one is due at `next_attempt_at`. `error` must hold no
    /// secret (the delivery code writes the webhook name and a redacted URL only).
    pub fn webhook_retry(
        &mut self,
        id: i64,
        status: Option<u16>,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE webhook_outbox SET last_status = ?2, last_error = ?3, next_attempt_at = ?4
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![id, status, error, stamp(next_attempt_at)])?;
        Ok(())
    }

    /// No more attempts: `reason` says why (kept in `last_error`).
    pub fn webhook_gave_up(
        &mut self,
        id: i64,
        status: Option<u16>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE webhook_outbox
                 SET state = 'gave_up', gave_up_at = ?4, last_status = ?2, last_error = ?3,
                     next_attempt_at = NULL
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![id, status, reason, stamp(now)])?;
        Ok(())
    }

    /// Outbox rows, oldest first: those not delivered (pending and given up), or all.
    pub fn webhook_outbox(&self, include_delivered: bool) -> Result<Vec<OutboxRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT msg_id, webhook, event_type, run_id, state, attempts, created_at,
                    next_attempt_at, last_attempt_at, last_status, last_error, delivered_at,
                    gave_up_at
             FROM webhook_outbox WHERE ?1 OR state != 'delivered' ORDER BY id",
        )?;
        let rows = stmt
            .query_map(params![include_delivered], |r| {
                Ok(OutboxRow {
                    msg_id: r.get(0)?,
                    webhook: r.get(1)?,
                    event_type: r.get(2)?,
                    run_id: r.get(3)?,
                    state: r.get(4)?,
                    attempts: r.get::<i64>(5)?.clamp(0, u32::MAX as i64) as u32,
                    created_at: r.get(6)?,
                    next_attempt_at: r.get(7)?,
                    last_attempt_at: r.get(8)?,
                    last_status: r.get::<Option<i64>>(9)?.and_then(|s| u16::try_from(s).ok()),
                    last_error: r.get(10)?,
                    delivered_at: r.get(11)?,
                    gave_up_at: r.get(12)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Notifications still to deliver (state `pending`): the outbox depth the metrics show.
    pub fn outbox_depth(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM webhook_outbox WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Per webhook with notifications still to deliver, when the oldest of them was written
    /// (RFC 3339 UTC): how long a receiver has not been taking them, which the depth alone
    /// does not say (a dead receiver fed a few notifications every few hours keeps it flat
    /// for hours).
    pub fn outbox_oldest_pending(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT webhook, min(created_at) FROM webhook_outbox WHERE state = 'pending'
             GROUP BY webhook",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
