//! The SQLite store: the only module that holds SQL.
//!
//! Tables (`instances`, `scans`, `sync_runs`, `findings`, `finding_events`,
//! `webhook_outbox`, `owners`, `scan_leases`, and the listener's `hook_deliveries` and
//! `readiness_probe`) are a documented interface: operators query the file with `sqlite3`.
//! Schema changes are numbered migrations in `migrations/`, applied at open by writers (each
//! in one transaction, versioned with `PRAGMA user_version`); read-only commands use
//! [`Store::open_read_only`], which never writes. A file written by a newer scansync is
//! refused rather than guessed at. The connection runs in WAL mode (readers such as
//! `scansync findings` never block the daemon), with foreign keys on, `busy_timeout` 5 s,
//! `synchronous=NORMAL` and a checkpoint every 10,000 WAL pages (see [`WAL_AUTOCHECKPOINT`]).
//!
//! # Dedup and lifecycle (the README's "When is a finding fixed?")
//! - A finding row is unique per (scan, fingerprint), the fingerprint being
//!   [`Finding::fingerprint`] (recipe 2, recorded per row). Each page is one transaction: a
//!   crash between pages keeps every earlier page, and the run row's counters always match
//!   the pages committed. Only the run holding its scan's lease stores (`lease.rs`).
//! - First time a fingerprint is seen: state `new` (or what the vendor's verdict says),
//!   event `created`, `counts.new`.
//! - Known, listed by this run: `new`/`open`/`reopened`/`missing` become `open`; `fixed`
//!   becomes `reopened` (or its local triage); a local triage holds; the vendor's verdict
//!   applies (resolved → `fixed`, false positive / accepted → that state unless triaged
//!   locally). Each state change is an event; so are severity and vendor status changes.
//! - Seen again within the same run (a repeated or overlapping page), or already decided by a
//!   newer run (`touched_run_id`): nothing changes, so `times_seen` counts runs and
//!   `last_run_id` never moves backwards.
//! - [`Store::finish_run`] with [`RunEnd::Succeeded`] (a complete listing) fixes the scan's
//!   findings the run did not list, or holds them as `missing` when the mass-fix guard trips
//!   (see there). A failed, interrupted or timed-out run records its state and error text
//!   and never fixes anything.
//! - `finish_run` also writes the run's webhook notifications to `webhook_outbox`, in the
//!   same transaction, from the run's events (see `outbox.rs` and [`crate::webhooks`]).
//!
//! Triage (`triage.rs`): a person's triage (`Store::triage`) wins over a `[[suppress]]`
//! rule's, applied by the page import, which wins over the vendor's word; a triage is kept
//! while its finding is fixed and is what it returns to. An acceptance's `until` and a higher
//! severity (when asked) end it at the next import that lists the finding.
//!
//! Events caused by a page import (`created`, `reopened`, `returned`, `vendor_state`,
//! `fixed` by verdict, `severity_changed`, `status_changed`, and the triage events
//! `suppressed`, `released`, `expired`, `escalated`) are written by triggers in the
//! schema, which see a row's old and new values in the same statement; that keeps the import
//! to one `INSERT … ON CONFLICT DO UPDATE` per finding, no lookup first. `fixed` and `missing`
//! at a run's end and `state_set` are written here.
//!
//! # Cost
//! The page import is the hot path (a million findings per run happen), so it avoids what
//! SQLite makes expensive per row: no `RETURNING` (it materialises a temporary table per
//! statement run) and no `CHECK (x IN (…))` (a temporary b-tree per row written; migration
//! 0004 spells them as OR-chains). A page's counters come from `changes()` per upsert and
//! from the events the triggers wrote during the page. BENCHMARKS.md has the measurements.
//!
//! # Unfinished runs
//! Opening the store never touches runs. A `running` run belongs to its owner (a process, by
//! a random id with a heartbeat in `owners`); once the owner is gone it is abandoned, and a
//! daemon adopts it or ends it (`lease.rs`). No process id is trusted: they repeat across
//! PID namespaces and mean nothing on another host.

mod lease;
mod retention;
pub use retention::PruneReport;
mod listener;
pub use lease::{heartbeat_every, lease_ttl, Owner, ScanClaim};
pub use listener::Claim;

use crate::finding::{Finding, Location, Severity, FINGERPRINT_RECIPE};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// The numbered migrations, in order, each with the schema version it brings the store to
/// (the number in its file name). Versions are explicit rather than positions so that
/// migrations written on parallel branches keep their numbers when merged: each applies in
/// version order, and `user_version` ends at the last one.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_webhooks.sql")),
    (3, include_str!("migrations/0003_hook_deliveries.sql")),
    (
        4,
        include_str!("migrations/0004_checks_without_in_lists.sql"),
    ),
    (5, include_str!("migrations/0005_lifecycle.sql")),
    (6, include_str!("migrations/0006_triage.sql")),
];

mod outbox;
mod shared;
pub use outbox::{NotificationBody, OutboxMessage, OutboxRow, MAX_FINDINGS};
pub use shared::{start_store, with_store, Reader, SharedStore};
mod triage;
pub use triage::{FindingDetail, Triage, TriageRequest, TriageSource, MIN_FINGERPRINT_PREFIX};

/// WAL pages after which a commit copies the WAL back into the database file (SQLite's
/// default is 1,000, 4 MiB). A page import dirties about one index page per new finding (the
/// fingerprint is a hash, so inserts land all over the dedup index), so with the default
/// every other page of findings paid a checkpoint and its two fsyncs: 40 % of the import's
/// CPU profile. At 10,000 pages (40 MiB) a checkpoint comes every ~20 pages of findings and
/// copies a page changed by several of them once: 15 % less CPU for a million-finding
/// import, 40 % less wall time at 300,000 (BENCHMARKS.md).
const WAL_AUTOCHECKPOINT: i64 = 10_000;
/// What the WAL file is cut back to after a checkpoint (bytes), so one large import does not
/// leave a large file behind.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Row id of a `sync_runs` row.
pub type RunId = i64;

/// Errors from the store. SQLite's own message is kept; the path is named where known.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store: {0}")]
    Invalid(String),
    /// [`Store::begin_due_run`]: this run of the scan (another process's) served the due
    /// time; nothing was begun. Never returned from the public API.
    #[error("run {0} served this due time")]
    ServedBy(RunId),
    /// Another live run holds the scan's lease ([`Store::begin_run`]).
    #[error("scan \"{scan}\" is being run by run {} of {owner}", .run_id.map_or_else(|| "?".to_string(), |r| r.to_string()))]
    ScanBusy {
        scan: String,
        run_id: Option<RunId>,
        owner: String,
    },
    /// This process no longer holds the lease of the run's scan (its heartbeat expired and
    /// another process took the scan, or adopted the run): the run stores nothing more.
    #[error("run {0} lost its scan's lease to another process; it stores nothing more")]
    LeaseLost(RunId),
    /// No finding answers to an id or fingerprint ([`Store::resolve_finding`]).
    #[error("{0}")]
    NoSuchFinding(String),
    /// A fingerprint prefix, or a fingerprint in several scans, names more than one finding.
    #[error("{0}")]
    AmbiguousFinding(String),
    /// A read-only command found no store file.
    #[error("no store at {0}; `scansync sync` or the daemon creates it")]
    Missing(String),
    /// A read-only command found a store older than this scansync.
    #[error(
        "store {path} has schema version {found}, older than this scansync's {known}; \
         `scansync sync` or the daemon upgrades it (read-only commands never write it)"
    )]
    SchemaTooOld {
        path: String,
        found: i64,
        known: i64,
    },
    #[error(
        "store {path} has schema version {found}, but this scansync knows only up to \
         version {known}; upgrade scansync, or point it at another store file"
    )]
    SchemaTooNew {
        path: String,
        found: i64,
        known: i64,
    },
}

/// Who a run is for and the rules it ends by. Copied onto the run row so history survives
/// config edits, and so a run adopted by another process ends by the rules it began with.
#[derive(Debug, Clone)]
pub struct RunScope {
    pub scan: String,
    pub instance: String,
    pub vendor: String,
    pub bind_to: String,
    pub branch: Option<String>,
    /// What started it: `schedule`, `cli`, `webhook`, `resume`, …
    pub trigger: String,
    /// The share of the scan's findings one run may fix before the fixes are held (see
    /// [`Store::finish_run`]); `1.0` turns the guard off.
    pub fix_guard: f64,
    /// The scan's `min_severity`: what its notifications report. Never what the run saw.
    pub min_severity: Option<Severity>,
}

/// The guard looks at shares only above this many findings (a scan of 3 losing 2 is no
/// sign of a lie); a listing that loses every finding is held at any size.
pub const FIX_GUARD_MIN_FINDINGS: u64 = 20;

impl Default for RunScope {
    fn default() -> RunScope {
        RunScope {
            scan: String::new(),
            instance: String::new(),
            vendor: String::new(),
            bind_to: String::new(),
            branch: None,
            trigger: String::new(),
            fix_guard: crate::config::DEFAULT_FIX_GUARD,
            min_severity: None,
        }
    }
}

/// A run's state in `sync_runs.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
    Interrupted,
    TimedOut,
}

/// How a run ended. Only `Succeeded` (complete and successful) may mark findings fixed.
#[derive(Debug, Clone)]
pub enum RunEnd {
    Succeeded,
    Failed(String),
    Interrupted(String),
    TimedOut(String),
}

/// Per-run counters, kept on the run row and updated with each page's transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunCounts {
    /// Findings seen in this run (each fingerprint once).
    pub seen: u64,
    /// First time ever seen.
    pub new: u64,
    /// Seen before and still there.
    pub open: u64,
    /// Was fixed, is back.
    pub reopened: u64,
    /// Not seen in a complete successful run (set by `finish_run`), or listed with the
    /// vendor's "resolved" word.
    pub fixed: u64,
    /// Not seen in a complete run whose fixes the mass-fix guard held: marked `missing`.
    pub missing: u64,
    /// Pages committed.
    pub pages: u64,
}

/// A `sync_runs` row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub id: RunId,
    pub scan: String,
    pub instance: String,
    pub vendor: String,
    pub bind_to: String,
    pub branch: Option<String>,
    pub trigger: String,
    pub state: RunState,
    pub vendor_scan_id: Option<String>,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub finished_at: Option<String>,
    pub counts: RunCounts,
    pub error: Option<String>,
}

/// A finding's lifecycle state in `findings.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingState {
    New,
    Open,
    Fixed,
    Reopened,
    /// Absent once from a complete listing whose fixes the mass-fix guard held back: fixed
    /// if the next complete listing still lacks it, open again if it lists it.
    Missing,
    /// Set locally; survives re-imports.
    FalsePositive,
    /// Set locally; survives re-imports.
    Accepted,
}

/// A `findings` row as the CLI and exports read it.
#[derive(Debug, Clone)]
pub struct FindingRow {
    /// `findings.id`: a short handle for `scansync finding` and `triage`.
    pub id: i64,
    pub fingerprint: String,
    pub scan: String,
    pub instance: String,
    pub vendor: String,
    pub bind_to: String,
    pub state: FindingState,
    /// The latest version of the finding (raw payload included).
    pub finding: Finding,
    /// RFC 3339 UTC, by scansync's clock.
    pub first_seen: String,
    pub last_seen: String,
    pub times_seen: u64,
    /// The triage the row remembers (who set it, why, until when); empty when none.
    pub triage: Triage,
}

/// Filters for [`Store::for_each_finding`]; empty vectors mean "any".
#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    pub scans: Vec<String>,
    pub states: Vec<FindingState>,
    /// This severity or worse.
    pub min_severity: Option<Severity>,
    /// Only these row ids (`findings --id`).
    pub ids: Vec<i64>,
    /// Only fingerprints starting with one of these (`findings --fingerprint`).
    pub fingerprints: Vec<String>,
}

/// Findings of one scan by (state, severity); combinations without findings are absent.
pub type FindingCounts = BTreeMap<(FindingState, Severity), u64>;

/// A `finding_events` row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FindingEvent {
    pub run_id: Option<RunId>,
    /// `created`, `severity_changed`, `status_changed`, `fixed`, `missing`, `reopened`,
    /// `returned`, `vendor_state`, and the triage events `state_set` (a person),
    /// `suppressed` / `released` (a rule), `expired` and `escalated` (a triage that ended).
    pub kind: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub at: String,
    /// Triage events: the person who gave the triage (or whose triage ended).
    pub by: Option<String>,
    /// Triage events: why.
    pub reason: Option<String>,
    /// Triage events: the day the triage ends (`YYYY-MM-DD`).
    pub until: Option<String>,
    /// Rule events: the `[[suppress]]` rule's name.
    pub rule: Option<String>,
}

impl RunState {
    /// The word in `sync_runs.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
            RunState::TimedOut => "timed_out",
        }
    }

    fn parse(word: &str) -> Result<RunState, StoreError> {
        Ok(match word {
            "running" => RunState::Running,
            "succeeded" => RunState::Succeeded,
            "failed" => RunState::Failed,
            "interrupted" => RunState::Interrupted,
            "timed_out" => RunState::TimedOut,
            other => return Err(unknown_word("run state", other)),
        })
    }
}

impl FindingState {
    /// Every state, in lifecycle order (metrics show each one, zero included).
    pub const ALL: [FindingState; 7] = [
        FindingState::New,
        FindingState::Open,
        FindingState::Fixed,
        FindingState::Reopened,
        FindingState::Missing,
        FindingState::FalsePositive,
        FindingState::Accepted,
    ];

    /// The word in `findings.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingState::New => "new",
            FindingState::Open => "open",
            FindingState::Fixed => "fixed",
            FindingState::Reopened => "reopened",
            FindingState::Missing => "missing",
            FindingState::FalsePositive => "false_positive",
            FindingState::Accepted => "accepted",
        }
    }

    /// States set by a person rather than by imports; imports never change them.
    pub fn is_local(self) -> bool {
        matches!(self, FindingState::FalsePositive | FindingState::Accepted)
    }

    fn parse(word: &str) -> Result<FindingState, StoreError> {
        Ok(match word {
            "new" => FindingState::New,
            "open" => FindingState::Open,
            "fixed" => FindingState::Fixed,
            "reopened" => FindingState::Reopened,
            "missing" => FindingState::Missing,
            "false_positive" => FindingState::FalsePositive,
            "accepted" => FindingState::Accepted,
            other => return Err(unknown_word("finding state", other)),
        })
    }
}

impl std::str::FromStr for FindingState {
    type Err = String;
    /// Parses the store's words, so CLI filters use the same vocabulary as `sqlite3` queries.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FindingState::parse(s).map_err(|_| {
            format!(
                "\"{s}\" is not a finding state (one of new, open, fixed, reopened, \
                 missing, false_positive, accepted)"
            )
        })
    }
}

impl fmt::Display for FindingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word in the file that this code does not know: someone edited the file by hand or a
/// newer scansync wrote it without a schema bump.
fn unknown_word(what: &str, word: &str) -> StoreError {
    StoreError::Invalid(format!(
        "unknown {what} \"{word}\" in the store file; was it edited by hand?"
    ))
}

/// scansync's clock as stored: RFC 3339 UTC with milliseconds, so text order is time order.
fn now() -> String {
    stamp(chrono::Utc::now())
}

/// A time as the store writes it (see [`now`]).
fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Columns of a `sync_runs` row, in the order [`run_from_row`] reads them.
const RUN_COLUMNS: &str = "id, scan, instance, vendor, bind_to, branch, trigger, state, \
     vendor_scan_id, started_at, finished_at, seen, new, open, reopened, fixed, pages, error, missing";

/// Columns of a finding as [`finding_from_row`] reads them (`f` = findings, `s` = scans,
/// `i` = instances).
const FINDING_COLUMNS: &str = "f.fingerprint, s.name, i.name, i.vendor, s.bind_to, f.state, \
     f.vendor_id, f.title, f.severity, f.vendor_status, f.cwe, f.owasp, f.rule_id, \
     f.location_kind, f.file_path, f.start_line, f.end_line, f.http_method, f.api_path, \
     f.api_host, f.description, f.remediation, f.vendor_url, f.vendor_first_seen, \
     f.vendor_last_seen, f.raw, f.first_seen, f.last_seen, f.times_seen, f.id, f.triage, \
     f.triage_source, f.triage_reason, f.triage_by, f.triage_until, f.triage_at, f.triage_rule, \
     f.reopen_on_severity_increase";

/// Severity words worst first, for `ORDER BY` (the words themselves do not sort).
const SEVERITY_RANK_SQL: &str = "CASE f.severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 \
     WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END";

/// The page import: one statement per finding (`?25` = the vendor's verdict word or NULL,
/// `?27` = the run is older than the scan's newest successful run: what it finds that the
/// store lacks, the newer complete listing lacked, so it is stored as already fixed; and
/// what that listing found absent (fixed or missing) it leaves so; `?28`…`?31` = the
/// suppression rule that matches the finding, if any: its state, name, reason and until).
///
/// The `WHERE` makes the update a no-op on a row that this run, or a newer one, already saw or
/// decided (`touched_run_id`): a repeated page changes nothing, and an older run adopted
/// late never overwrites what a newer run decided. A no-op tells the caller to look closer
/// (a second finding with the same identity, see [`Finding::fingerprint`]).
///
/// The state of a listed finding: the vendor's "resolved" word fixes it; a person's triage
/// holds (and is what a fixed or missing finding returns to) until its `until` day comes or,
/// when asked, the severity rises above the one accepted; then a matching suppression rule's
/// triage; then the vendor's false positive or accepted word; otherwise a fixed finding is
/// `reopened` and any other is `open` (a vendor verdict withdrawn, or a rule removed,
/// included). The triggers `finding_listed_state_changed` and `finding_listed_triage_changed`
/// write the event of each change.
static UPSERT_FINDING_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let rank = |col: &str| {
        format!(
            "(CASE {col} WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 \
             WHEN 'low' THEN 1 ELSE 0 END)"
        )
    };
    // Whether a person's triage still holds for this sighting.
    let local = format!(
        "(findings.triage_source = 'local'
          AND (findings.triage_until IS NULL OR findings.triage_until > excluded.last_seen)
          AND NOT (findings.reopen_on_severity_increase
                   AND {} > {}))",
        rank("excluded.severity"),
        rank("coalesce(findings.triage_severity, findings.severity)")
    );
    let keep = |col: &str| {
        format!("    {col} = CASE WHEN {local} THEN findings.{col} ELSE excluded.{col} END,\n")
    };
    // When and at what severity a triage began stay while the same triage goes on.
    let since = |col: &str| {
        format!(
            "    {col} = CASE WHEN {local} THEN findings.{col}
                 WHEN excluded.triage IS findings.triage
                      AND excluded.triage_source IS findings.triage_source
                      AND excluded.triage_rule IS findings.triage_rule THEN findings.{col}
                 ELSE excluded.{col} END,\n"
        )
    };
    let mut triage_columns: String = [
        "triage",
        "triage_source",
        "triage_reason",
        "triage_by",
        "triage_until",
        "triage_rule",
        "reopen_on_severity_increase",
    ]
    .iter()
    .map(|c| keep(c))
    .collect();
    triage_columns.push_str(&since("triage_at"));
    triage_columns.push_str(&since("triage_severity"));
    format!(
        "
INSERT INTO findings (
    scan_id, fingerprint, state, title, severity, vendor_status, cwe, owasp, rule_id,
    location_kind, file_path, start_line, end_line, http_method, api_path, api_host,
    description, remediation, vendor_url, vendor_id, vendor_first_seen, vendor_last_seen, raw,
    first_seen, last_seen, times_seen, last_run_id, vendor_verdict, triage, triage_source,
    fingerprint_version, touched_run_id, triage_reason, triage_until, triage_at, triage_rule,
    triage_severity)
VALUES (?1, ?2,
        CASE WHEN ?27 THEN 'fixed'
             WHEN ?25 = 'resolved' THEN 'fixed'
             WHEN ?28 IS NOT NULL THEN ?28
             ELSE CASE ?25 WHEN 'false_positive' THEN 'false_positive'
                           WHEN 'accepted' THEN 'accepted' ELSE 'new' END END,
        ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
        ?18, ?19, ?20, ?21, ?22, ?23, ?23, 1, ?24, ?25,
        CASE WHEN ?28 IS NOT NULL THEN ?28
             WHEN ?25 = 'false_positive' OR ?25 = 'accepted' THEN ?25 END,
        CASE WHEN ?28 IS NOT NULL THEN 'rule'
             WHEN ?25 = 'false_positive' OR ?25 = 'accepted' THEN 'vendor' END,
        ?26, ?24,
        CASE WHEN ?28 IS NOT NULL THEN ?30 END,
        CASE WHEN ?28 IS NOT NULL THEN ?31 END,
        CASE WHEN ?28 IS NOT NULL OR ?25 = 'false_positive' OR ?25 = 'accepted' THEN ?23 END,
        CASE WHEN ?28 IS NOT NULL THEN ?29 END,
        CASE WHEN ?28 IS NOT NULL OR ?25 = 'false_positive' OR ?25 = 'accepted' THEN ?4 END)
ON CONFLICT (scan_id, fingerprint) DO UPDATE SET
    state = CASE
                WHEN ?27 AND (findings.state = 'fixed' OR findings.state = 'missing')
                    THEN findings.state
                WHEN excluded.vendor_verdict = 'resolved' THEN 'fixed'
                WHEN {local} THEN findings.triage
                WHEN excluded.triage IS NOT NULL THEN excluded.triage
                WHEN findings.state = 'fixed' THEN 'reopened'
                ELSE 'open'
            END,
{triage_columns}    title = excluded.title,
    severity = excluded.severity,
    vendor_status = excluded.vendor_status,
    cwe = excluded.cwe,
    owasp = excluded.owasp,
    rule_id = excluded.rule_id,
    location_kind = excluded.location_kind,
    file_path = excluded.file_path,
    start_line = excluded.start_line,
    end_line = excluded.end_line,
    http_method = excluded.http_method,
    api_path = excluded.api_path,
    api_host = excluded.api_host,
    description = excluded.description,
    remediation = excluded.remediation,
    vendor_url = excluded.vendor_url,
    vendor_id = excluded.vendor_id,
    vendor_first_seen = excluded.vendor_first_seen,
    vendor_last_seen = excluded.vendor_last_seen,
    raw = excluded.raw,
    last_seen = excluded.last_seen,
    times_seen = findings.times_seen + 1,
    last_run_id = excluded.last_run_id,
    vendor_verdict = excluded.vendor_verdict,
    fingerprint_version = excluded.fingerprint_version,
    touched_run_id = excluded.touched_run_id
WHERE findings.touched_run_id < excluded.touched_run_id"
    )
});

/// States a complete listing can find absent (everything but `fixed`).
const PRESENT_STATES_SQL: &str = "(state = 'new' OR state = 'open' OR state = 'reopened' \
     OR state = 'missing' OR state = 'false_positive' OR state = 'accepted')";

/// How a statement over all of one scan's findings visits them (`finish_run` finding the
/// unseen ones, `open_by_severity`).
///
/// Why: the only index that names the scan is the dedup key (scan, fingerprint), and a walk
/// along it visits rows in fingerprint order, which is random order in the table: at a
/// million findings, one random page read per row (3 s where a sequential scan takes 0.4 s).
/// A scan's rows were mostly inserted together, so their ids usually form a dense range;
/// then the range is read in id order, and only a scan whose rows are spread thinly over a
/// much larger table (a small scan beside a big one) walks the index.
struct ScanRows {
    first: i64,
    last: i64,
    /// Whether the id range is dense enough to read sequentially.
    by_range: bool,
}

impl ScanRows {
    /// A sequential read of the range beats the index walk unless the range holds several
    /// times more rows than the scan has (a random read costs about seven sequential ones).
    const MAX_SPREAD: i64 = 4;

    /// Reads the scan's row count and id bounds (from the dedup index alone, no table reads).
    fn of(conn: &Connection, scan_id: i64) -> Result<ScanRows, StoreError> {
        let (count, first, last): (i64, Option<i64>, Option<i64>) = conn
            .prepare_cached("SELECT count(*), min(id), max(id) FROM findings WHERE scan_id = ?1")?
            .query_row(params![scan_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        let (first, last) = (first.unwrap_or(0), last.unwrap_or(-1));
        Ok(ScanRows {
            first,
            last,
            by_range: last - first < count.saturating_mul(Self::MAX_SPREAD),
        })
    }

    /// The `WHERE` terms selecting the scan's rows, given the parameter names of the scan id
    /// and the two bounds. The unary `+` keeps the query planner off the other access path.
    fn sql(&self, scan: &str, first: &str, last: &str) -> String {
        self.sql_on("", scan, first, last)
    }

    /// [`ScanRows::sql`] for a query that names `findings` by an alias (`"f."`).
    fn sql_on(&self, alias: &str, scan: &str, first: &str, last: &str) -> String {
        if self.by_range {
            format!("{alias}id BETWEEN {first} AND {last} AND +{alias}scan_id = {scan}")
        } else {
            format!("{alias}scan_id = {scan} AND +{alias}id BETWEEN {first} AND {last}")
        }
    }
}

/// What a page import needs to know about its run, read once per page.
struct RunContext {
    scan_id: i64,
    fix_guard: f64,
    /// The store scan's name (`name` or `name@branch`), which suppression rules name.
    scan: String,
}

/// The store. One writer connection; readers open their own (WAL lets them run beside it).
pub struct Store {
    conn: Connection,
    /// The webhooks `finish_run` writes notifications for (see [`Store::set_webhook_routes`]).
    notifications: Option<outbox::Notifications>,
    /// This process, as the leases name it.
    owner: Owner,
    /// The config's `[[suppress]]` rules, applied as pages are stored (see
    /// [`Store::set_suppress_rules`]).
    suppress_rules: Vec<crate::config::SuppressRule>,
}

impl Store {
    /// Opens (creating file and parent folder), applies migrations, sets WAL, foreign keys
    /// and busy_timeout. Does not touch runs: see [`Store::abandoned_runs`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let open_err = |source| StoreError::Open {
            path: shown.clone(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Invalid(format!(
                    "cannot create the folder {} for the store: {e}; create it or choose \
                     another store path",
                    parent.display()
                ))
            })?;
        }
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        // Checkpoint every WAL_AUTOCHECKPOINT pages instead of SQLite's 1,000: see there.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
            .map_err(open_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        migrate(&mut conn, &shown)?;
        Ok(Store {
            conn,
            notifications: None,
            owner: Owner::new(),
            suppress_rules: Vec::new(),
        })
    }

    /// Opens an existing store for reading only (`findings`, `runs`, `export`, `webhook
    /// pending`): never creates, migrates or writes it. A missing file, or a schema older or
    /// newer than this binary's, is an error that says what to do.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        if !path.exists() {
            return Err(StoreError::Missing(shown));
        }
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: shown.clone(),
            source,
        })?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > known {
            return Err(StoreError::SchemaTooNew {
                path: shown,
                found,
                known,
            });
        }
        if found < known {
            return Err(StoreError::SchemaTooOld {
                path: shown,
                found,
                known,
            });
        }
        Ok(Store {
            conn,
            notifications: None,
            owner: Owner::new(),
            suppress_rules: Vec::new(),
        })
    }

    /// The connection settings that shape write speed, as `(pragma, value)` in the order they
    /// must be applied to a new file (`page_size` before anything is written). The ingest
    /// benchmark's floor copies them, so it measures bare SQLite under the store's settings.
    pub fn write_pragmas(&self) -> Result<Vec<(String, i64)>, StoreError> {
        [
            "page_size",
            "synchronous",
            "foreign_keys",
            "cache_size",
            "wal_autocheckpoint",
            "journal_size_limit",
            "temp_store",
        ]
        .iter()
        .map(|name| {
            let value: i64 = self
                .conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?;
            Ok((name.to_string(), value))
        })
        .collect()
    }

    /// The `[[suppress]]` rules pages are stored with (none until this is called). Set from
    /// the config by [`crate::sync::SyncContext`], again on every reload; a rule removed
    /// releases its findings at their scan's next run.
    pub fn set_suppress_rules(&mut self, rules: Vec<crate::config::SuppressRule>) {
        self.suppress_rules = rules;
    }

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
        let pid = std::process::id();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Read once the write lock is held: a run that waited for it (another process ending
        // its run) must not appear to have started before that run ended.
        let at = now();
        if let Some((since, triggers)) = due {
            if let Some(run) = lease::success_since(&tx, &self.owner, &scope.scan, since, triggers)?
            {
                return Err(StoreError::ServedBy(run));
            }
        }
        lease::register_owner(&tx, &self.owner)?;
        let instance_id: i64 = tx
            .prepare_cached(
                "INSERT INTO instances (name, vendor, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET vendor = excluded.vendor
                 RETURNING id",
            )?
            .query_row(params![scope.instance, scope.vendor, at], |r| r.get(0))?;
        let scan_id: i64 = tx
            .prepare_cached(
                "INSERT INTO scans (name, instance_id, bind_to, branch, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
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
                    self.owner.id,
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
            } = lease::claim_in(&tx, &self.owner, &scope.scan, Some(run))?
            {
                return Err(StoreError::ScanBusy {
                    scan: scope.scan.clone(),
                    run_id,
                    owner: owner_label,
                });
            }
        }
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

    /// Imports one vendor page in one transaction and returns what it changed (see the
    /// module docs for the rules). The run's counters move in the same transaction. Only the
    /// holder of the scan's lease stores: [`StoreError::LeaseLost`] otherwise.
    pub fn upsert_page(&mut self, run: RunId, page: &[Finding]) -> Result<RunCounts, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ctx = running_context(&tx, &self.owner, run)?;
        if !lease::holds_lease(&tx, &self.owner, ctx.scan_id, run)? {
            return Err(StoreError::LeaseLost(run));
        }
        let counts = upsert_page_in(&tx, &ctx, run, page, &self.suppress_rules)?;
        tx.commit()?;
        Ok(counts)
    }

    /// Ends a run in one transaction, releases its scan's lease and writes its webhook
    /// notifications (built from the run's finding events, so they exist exactly when the
    /// run's end does, and include what pages stored before a crash and an adoption).
    ///
    /// Only [`RunEnd::Succeeded`] (a complete listing, read to its end) fixes anything, and
    /// only while the run holds the lease and no newer run of the scan has succeeded (a run
    /// adopted late imports without fixing). Findings it did not list become `fixed`, unless
    /// the mass-fix guard trips: more than the run's `fix_guard` share of the scan's present
    /// findings (above [`FIX_GUARD_MIN_FINDINGS`]), or every one of them. Then they become
    /// `missing`, and only the next complete run that still lacks them fixes them; findings
    /// already `missing` are fixed either way (their second absence).
    pub fn finish_run(&mut self, run: RunId, end: RunEnd) -> Result<RunRow, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let at = now();
        let ctx = running_context(&tx, &self.owner, run)?;
        let holds_lease = lease::holds_lease(&tx, &self.owner, ctx.scan_id, run)?;
        let (mut state, mut error) = match end {
            RunEnd::Succeeded => (RunState::Succeeded, None),
            RunEnd::Failed(e) => (RunState::Failed, Some(e)),
            RunEnd::Interrupted(e) => (RunState::Interrupted, Some(e)),
            RunEnd::TimedOut(e) => (RunState::TimedOut, Some(e)),
        };
        if state == RunState::Succeeded && !holds_lease {
            state = RunState::Interrupted;
            error = Some(
                "the run lost its scan's lease (its heartbeat expired and another process \
                 took the scan); nothing was marked fixed"
                    .into(),
            );
        }
        let (mut fixed, mut missing) = (0, 0);
        if state == RunState::Succeeded {
            if newer_success(&tx, ctx.scan_id, run)? {
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
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
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
                "SELECT {RUN_COLUMNS} FROM sync_runs WHERE ?1 IS NULL ORDER BY id DESC LIMIT ?2"
            ),
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![scan, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(run_from_row(row)?);
        }
        Ok(out)
    }

    /// The newest run of a scan, whatever its state.
    pub fn last_run(&self, scan: &str) -> Result<Option<RunRow>, StoreError> {
        Ok(self.runs(Some(scan), 1)?.into_iter().next())
    }

    /// Streams findings matching `filter` to `f`, worst severity first, then by scan and
    /// fingerprint, without holding them all in memory (exports of large stores).
    pub fn for_each_finding<E: From<StoreError>>(
        &self,
        filter: &FindingFilter,
        mut f: impl FnMut(FindingRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut conditions = Vec::new();
        let mut args: Vec<&str> = Vec::new();
        let mut any_of = |column: &str, words: Vec<&'static str>, args: &mut Vec<&str>| {
            let marks = vec!["?"; words.len()].join(", ");
            conditions.push(format!("{column} IN ({marks})"));
            args.extend(words);
        };
        if !filter.states.is_empty() {
            any_of(
                "f.state",
                filter.states.iter().map(|s| s.as_str()).collect(),
                &mut args,
            );
        }
        if let Some(min) = filter.min_severity {
            any_of(
                "f.severity",
                Severity::ALL
                    .iter()
                    .filter(|s| **s >= min)
                    .map(|s| s.as_str())
                    .collect(),
                &mut args,
            );
        }
        if !filter.ids.is_empty() {
            let ids: Vec<String> = filter.ids.iter().map(i64::to_string).collect();
            conditions.push(format!("f.id IN ({})", ids.join(", ")));
        }
        if !filter.fingerprints.is_empty() {
            let any: Vec<String> = filter
                .fingerprints
                .iter()
                .map(|p| format!("substr(f.fingerprint, 1, {}) = ?", p.chars().count()))
                .collect();
            conditions.push(format!("({})", any.join(" OR ")));
            args.extend(filter.fingerprints.iter().map(String::as_str));
        }
        if !filter.scans.is_empty() {
            let marks = vec!["?"; filter.scans.len()].join(", ");
            conditions.push(format!("s.name IN ({marks})"));
            args.extend(filter.scans.iter().map(String::as_str));
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM findings f
             JOIN scans s ON s.id = f.scan_id
             JOIN instances i ON i.id = s.instance_id
             {where_clause}
             ORDER BY {SEVERITY_RANK_SQL} DESC, s.name, f.fingerprint"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(StoreError::from)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args))
            .map_err(StoreError::from)?;
        while let Some(row) = rows.next().map_err(StoreError::from)? {
            f(finding_from_row(row)?)?;
        }
        Ok(())
    }

    /// [`Store::for_each_finding`] collected, for callers that want them all at once.
    pub fn findings(&self, filter: &FindingFilter) -> Result<Vec<FindingRow>, StoreError> {
        let mut out = Vec::new();
        self.for_each_finding(filter, |row| {
            out.push(row);
            Ok::<_, StoreError>(())
        })?;
        Ok(out)
    }

    /// Open findings (`new`, `open`, `reopened`, and `missing`: a held fix is not a fix yet) of
    /// a scan by severity, every severity present (zero when none), for `scan` thresholds and
    /// summaries.
    pub fn open_by_severity(&self, scan: &str) -> Result<BTreeMap<Severity, u64>, StoreError> {
        let mut out: BTreeMap<Severity, u64> = Severity::ALL.iter().map(|s| (*s, 0)).collect();
        let scan_id: Option<i64> = self
            .conn
            .prepare_cached("SELECT id FROM scans WHERE name = ?1")?
            .query_row(params![scan], |r| r.get(0))
            .optional()?;
        let Some(scan_id) = scan_id else {
            return Ok(out);
        };
        let scan_rows = ScanRows::of(&self.conn, scan_id)?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT severity, count(*) FROM findings
             WHERE {} AND state IN ('new', 'open', 'reopened', 'missing')
             GROUP BY severity",
            scan_rows.sql("?1", "?2", "?3")
        ))?;
        let mut rows = stmt.query(params![scan_id, scan_rows.first, scan_rows.last])?;
        while let Some(row) = rows.next()? {
            let word: String = row.get(0)?;
            let severity = word
                .parse::<Severity>()
                .map_err(|_| unknown_word("severity", &word))?;
            out.insert(severity, row.get::<_, i64>(1)? as u64);
        }
        Ok(out)
    }

    /// Every scan in the store with its findings counted by state and severity (a scan with
    /// no findings maps to an empty table), for the metrics endpoint's gauges. One grouped
    /// query, so a scrape costs one pass over the findings, not one per series.
    ///
    /// `NOT INDEXED`: no index covers (scan, state, severity) — one would slow every page
    /// import to speed up a scrape — and a sequential pass over the table is measured ~2–3×
    /// faster than walking it through the (scan_id, fingerprint) index, which SQLite would
    /// otherwise pick (0.2 s against 0.5 s for 300,000 findings).
    pub fn finding_counts(&self) -> Result<BTreeMap<String, FindingCounts>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.name, c.state, c.severity, c.n
             FROM scans s LEFT JOIN (
                 SELECT scan_id, state, severity, count(*) AS n
                 FROM findings NOT INDEXED
                 GROUP BY scan_id, state, severity
             ) c ON c.scan_id = s.id",
        )?;
        let mut rows = stmt.query([])?;
        let mut out: BTreeMap<String, FindingCounts> = BTreeMap::new();
        while let Some(row) = rows.next()? {
            let scan: String = row.get(0)?;
            let counts = out.entry(scan).or_default();
            let (Some(state), Some(severity)) = (
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<String>>(2)?,
            ) else {
                continue;
            };
            let state = FindingState::parse(&state)?;
            let severity = severity
                .parse::<Severity>()
                .map_err(|_| unknown_word("severity", &severity))?;
            counts.insert((state, severity), row.get::<_, i64>(3)? as u64);
        }
        Ok(out)
    }

    /// When each scan last finished a successful run (RFC 3339 UTC), for scans that ever had
    /// one. Times are stored with fixed-width milliseconds, so the text maximum is the latest.
    pub fn last_successful_syncs(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT scan, max(finished_at) FROM sync_runs
             WHERE state = 'succeeded' AND finished_at IS NOT NULL
             GROUP BY scan",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sets a person's verdict on a finding, by scan and fingerprint, without a reason
    /// (tests and scripts; `scansync triage` uses [`Store::triage`]).
    pub fn set_local_state(
        &mut self,
        scan: &str,
        fingerprint: &str,
        state: FindingState,
    ) -> Result<(), StoreError> {
        let id = self.resolve_finding(fingerprint, Some(scan))?;
        self.triage(
            id,
            &TriageRequest {
                state,
                ..TriageRequest::default()
            },
        )?;
        Ok(())
    }

    /// A finding's history, oldest first, by scan and fingerprint.
    pub fn events(&self, scan: &str, fingerprint: &str) -> Result<Vec<FindingEvent>, StoreError> {
        let id: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT f.id FROM findings f JOIN scans s ON s.id = f.scan_id
                 WHERE s.name = ?1 AND f.fingerprint = ?2",
            )?
            .query_row(params![scan, fingerprint], |r| r.get(0))
            .optional()?;
        match id {
            Some(id) => self.events_of(id),
            None => Ok(Vec::new()),
        }
    }
}

/// Brings the schema up to date, one migration per transaction. The version is re-read
/// inside the (immediate, so exclusive-writer) transaction so two processes opening a fresh
/// file at once do not both apply a migration.
fn migrate(conn: &mut Connection, path: &str) -> Result<(), StoreError> {
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > known {
            return Err(StoreError::SchemaTooNew {
                path: path.to_owned(),
                found: version,
                known,
            });
        }
        let Some((next, sql)) = MIGRATIONS.iter().find(|(v, _)| *v > version) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        if *next == 5 {
            rekey_v2(&tx)?;
        }
        tx.pragma_update(None, "user_version", next)?;
        tx.commit()?;
    }
}

/// Migration 5's code half: every finding re-keyed to fingerprint recipe 2 in place (same
/// row id, state and history), inside the migration's transaction. Rows of one scan that
/// share recipe 2's parts are numbered as occurrences by line, then by age.
fn rekey_v2(conn: &Connection) -> Result<(), StoreError> {
    const PARTS: &str = "SELECT id, scan_id, title, rule_id, cwe, location_kind, file_path, \
         start_line, end_line, http_method, api_path, api_host FROM findings";
    /// The identity parts of a row, as a finding recipe 2 can key.
    fn parts(r: &Row<'_>) -> rusqlite::Result<Finding> {
        let location = location_from_row(r, 5)?;
        Ok(Finding {
            vendor_id: None,
            title: r.get(2)?,
            severity: Severity::Info,
            vendor_status: None,
            cwe: r.get(4)?,
            owasp: None,
            rule_id: r.get(3)?,
            location,
            description: None,
            remediation: None,
            vendor_url: None,
            vendor_first_seen: None,
            vendor_last_seen: None,
            raw: String::new(),
            verdict: None,
        })
    }
    // (scan, recipe-2 base key) → the rows sharing it, as (start line, end line, id).
    type Sightings = Vec<(Option<u32>, Option<u32>, i64)>;
    let mut by_key: std::collections::HashMap<(i64, String), Sightings> =
        std::collections::HashMap::new();
    {
        let mut stmt = conn.prepare(&format!("{PARTS} ORDER BY id"))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let finding = parts(r)?;
            let (start, end) = finding.lines();
            by_key
                .entry((r.get(1)?, finding.fingerprint(0)))
                .or_default()
                .push((start, end, r.get(0)?));
        }
    }
    // Out of the way first, so no new key collides with an old one still in place.
    conn.execute("UPDATE findings SET fingerprint = 'rekey:' || id", [])?;
    let mut update = conn
        .prepare("UPDATE findings SET fingerprint = ?2, fingerprint_version = ?3 WHERE id = ?1")?;
    let mut read = conn.prepare(&format!("{PARTS} WHERE id = ?1"))?;
    for ((_, base), mut rows) in by_key {
        rows.sort();
        for (occurrence, (_, _, id)) in rows.into_iter().enumerate() {
            let fingerprint = match occurrence {
                0 => base.clone(),
                n => read.query_row(params![id], parts)?.fingerprint(n as u32),
            };
            update.execute(params![id, fingerprint, FINGERPRINT_RECIPE])?;
        }
    }
    Ok(())
}

fn no_such_run(run: RunId) -> StoreError {
    StoreError::Invalid(format!("no sync run with id {run} in the store"))
}

/// The run's scope, or an error when the run does not exist, has already ended, or is owned
/// by another process (it adopted the run): a page or an end for such a run is refused.
fn running_context(conn: &Connection, owner: &Owner, run: RunId) -> Result<RunContext, StoreError> {
    let found: Option<(i64, String, Option<String>, f64, String)> = conn
        .prepare_cached(
            "SELECT scan_id, state, owner, fix_guard, scan FROM sync_runs WHERE id = ?1",
        )?
        .query_row(params![run], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let (scan_id, state, run_owner, fix_guard, scan) = found.ok_or_else(|| no_such_run(run))?;
    if state != RunState::Running.as_str() {
        return Err(StoreError::Invalid(format!(
            "sync run {run} has already ended ({state}); start a new run"
        )));
    }
    if run_owner.as_deref() != Some(owner.id.as_str()) {
        return Err(StoreError::LeaseLost(run));
    }
    Ok(RunContext {
        scan_id,
        fix_guard,
        scan,
    })
}

/// A finding first seen on a branch scope (`name@branch`) that a person triaged on the scan
/// itself (`name`, same fingerprint) starts with that triage: the same finding, judged
/// once, must not fail a feature branch's CI threshold. Only at creation: a triage set on
/// the branch later is the branch's own. The `state_set` event says whose triage it is.
fn inherit_branch_triage(
    conn: &Connection,
    ctx: &RunContext,
    run: RunId,
    events_before: i64,
) -> Result<(), StoreError> {
    let Some((base, _)) = ctx.scan.split_once('@') else {
        return Ok(());
    };
    let created_here = "SELECT finding_id FROM finding_events
         WHERE id > ?3 AND kind = 'created' AND new_value = 'new'";
    let inherited = conn
        .prepare_cached(&format!(
            "UPDATE findings SET state = b.triage, triage = b.triage, triage_source = 'local',
                 triage_reason = b.triage_reason, triage_by = b.triage_by,
                 triage_until = b.triage_until, triage_at = b.triage_at,
                 triage_severity = b.triage_severity,
                 reopen_on_severity_increase = b.reopen_on_severity_increase
             FROM findings b JOIN scans bs ON bs.id = b.scan_id
             WHERE bs.name = ?1 AND b.fingerprint = findings.fingerprint
               AND b.triage_source = 'local' AND b.triage IS NOT NULL
               AND findings.scan_id = ?2 AND findings.id IN ({created_here})"
        ))?
        .execute(params![base, ctx.scan_id, events_before])?;
    if inherited > 0 {
        conn.prepare_cached(&format!(
            "INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at,
                 actor, reason, until)
             SELECT id, ?1, 'state_set', 'new', triage, last_seen, triage_by, triage_reason,
                    triage_until
             FROM findings
             WHERE scan_id = ?2 AND triage_source = 'local' AND id IN ({created_here})"
        ))?
        .execute(params![run, ctx.scan_id, events_before])?;
    }
    Ok(())
}

/// Whether a run of the scan newer than `run` has succeeded: then `run`'s listing is older
/// than the scan's truth, and it neither fixes nor creates open findings.
fn newer_success(conn: &Connection, scan_id: i64, run: RunId) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM sync_runs
             WHERE scan_id = ?1 AND id > ?2 AND state = 'succeeded')",
        )?
        .query_row(params![scan_id, run], |r| r.get(0))?)
}

/// The end of a complete run: the scan's present findings this run did not list become
/// `fixed`, or `missing` when the guard trips (see [`Store::finish_run`]). Returns
/// `(fixed, missing)`.
fn fix_absent(
    conn: &Connection,
    ctx: &RunContext,
    run: RunId,
    at: &str,
) -> Result<(u64, u64), StoreError> {
    let rows = ScanRows::of(conn, ctx.scan_id)?;
    let in_scan = rows.sql("?1", "?3", "?4");
    let (present, absent, absent_missing): (i64, i64, i64) = conn
        .prepare_cached(&format!(
            "SELECT count(*), count(*) FILTER (WHERE last_run_id < ?2),
                    count(*) FILTER (WHERE last_run_id < ?2 AND state = 'missing')
             FROM findings WHERE {in_scan} AND {PRESENT_STATES_SQL}"
        ))?
        .query_row(params![ctx.scan_id, run, rows.first, rows.last], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    // The share is of what the scan had before this run: a listing that swaps every known
    // finding for others (another project's answer) must not dilute its own absences. Rows
    // it created already fixed (resolved at the vendor) were never counted as present.
    // Nor do rows it brought back from `fixed` (reopened, or returned to their triage):
    // absent before this run, they cannot dilute the absences of what was there.
    let created: i64 = conn
        .prepare_cached(
            "SELECT count(DISTINCT finding_id) FROM finding_events
             WHERE run_id = ?1 AND new_value != 'fixed'
               AND (kind = 'created' OR old_value = 'fixed')",
        )?
        .query_row(params![run], |r| r.get(0))?;
    let present = (present - created).max(0) as u64;
    let absent = absent as u64;
    if absent == 0 {
        return Ok((0, 0));
    }
    let tripped = ctx.fix_guard < 1.0
        && (absent == present
            || (present > FIX_GUARD_MIN_FINDINGS
                && absent as f64 > ctx.fix_guard * present as f64));
    // Findings already missing are fixed by this second absence; with the guard tripped the
    // others are held as missing, else they are fixed too. Events first, while the rows
    // still show their old state.
    let change = |to: &str, which: &str| -> Result<u64, StoreError> {
        let condition = format!("{in_scan} AND last_run_id < ?2 AND {which}");
        conn.prepare_cached(&format!(
            "INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at)
             SELECT id, ?2, ?5, state, ?5, ?6 FROM findings WHERE {condition}"
        ))?
        .execute(params![ctx.scan_id, run, rows.first, rows.last, to, at])?;
        Ok(conn
            .prepare_cached(&format!(
                "UPDATE findings SET state = ?5, touched_run_id = ?2 WHERE {condition}"
            ))?
            .execute(params![ctx.scan_id, run, rows.first, rows.last, to])? as u64)
    };
    if tripped {
        let fixed = change("fixed", "state = 'missing'")?;
        let missing = change(
            "missing",
            "(state = 'new' OR state = 'open' OR state = 'reopened' \
             OR state = 'false_positive' OR state = 'accepted')",
        )?;
        tracing::warn!(
            run_id = run,
            missing,
            present,
            "this complete listing lacks {absent} of the scan's {present} findings \
             (guard: {:.0} %): they are marked missing and become fixed only if the next \
             complete run lacks them too",
            ctx.fix_guard * 100.0
        );
        debug_assert_eq!(fixed, absent_missing as u64);
        Ok((fixed, missing))
    } else {
        Ok((change("fixed", PRESENT_STATES_SQL)?, 0))
    }
}

/// The body of [`Store::upsert_page`], inside the caller's transaction (tests drop that
/// transaction half way to show a page is all or nothing).
fn upsert_page_in(
    conn: &Connection,
    ctx: &RunContext,
    run: RunId,
    page: &[Finding],
    rules: &[crate::config::SuppressRule],
) -> Result<RunCounts, StoreError> {
    let at = now();
    // The rules for this scan still in force; a finding takes the first that matches.
    let rules: Vec<&crate::config::SuppressRule> = rules
        .iter()
        .filter(|r| r.covers_scan(&ctx.scan) && r.active_at(&at))
        .collect();
    // Every event with a higher id than this was written by this page's upserts (the page's
    // transaction is the only writer).
    let events_before: i64 = conn
        .prepare_cached("SELECT coalesce(max(id), 0) FROM finding_events")?
        .query_row([], |r| r.get(0))?;
    let stale = newer_success(conn, ctx.scan_id, run)?;
    let mut seen = 0u64;
    let mut stmt = conn.prepare_cached(&UPSERT_FINDING_SQL)?;
    let mut suppressed_any = false;
    for finding in page {
        let rule = rules.iter().find(|r| r.matches(finding)).copied();
        suppressed_any |= rule.is_some();
        seen += upsert_finding(
            conn,
            &mut stmt,
            UpsertContext {
                scan_id: ctx.scan_id,
                run,
                at: &at,
                stale,
                rule,
            },
            finding,
        )?;
    }
    if suppressed_any {
        // The rule's event after `created`, for the rows this page created suppressed.
        conn.prepare_cached(
            "INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at,
                 reason, until, rule)
             SELECT f.id, f.last_run_id, 'suppressed', NULL, f.triage, f.first_seen,
                    f.triage_reason, f.triage_until, f.triage_rule
             FROM findings f
             WHERE f.id IN (SELECT finding_id FROM finding_events
                            WHERE id > ?1 AND kind = 'created')
               AND f.triage_source = 'rule'
             ORDER BY f.id",
        )?
        .execute(params![events_before])?;
    }
    inherit_branch_triage(conn, ctx, run, events_before)?;
    // The triggers wrote one `created` event per inserted row, one `reopened` per fixed row
    // listed again and one `fixed` per known row the vendor calls resolved. A row created
    // already fixed (resolved at the vendor, or by a run older than the scan's newest
    // success) was never open here: neither new nor open. Every other counted row was known
    // and stays (or becomes) open.
    let (new, created_fixed, reopened, fixed): (i64, i64, i64, i64) = conn
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE kind = 'created' AND new_value != 'fixed'),
                    count(*) FILTER (WHERE kind = 'created' AND new_value = 'fixed'),
                    count(*) FILTER (WHERE kind = 'reopened'),
                    count(*) FILTER (WHERE kind = 'fixed')
             FROM finding_events WHERE id > ?1",
        )?
        .query_row(params![events_before], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
    let counts = RunCounts {
        seen,
        new: new as u64,
        open: seen.saturating_sub((new + created_fixed + reopened + fixed) as u64),
        reopened: reopened as u64,
        fixed: fixed as u64,
        missing: 0,
        pages: 1,
    };
    conn.prepare_cached(
        "UPDATE sync_runs SET seen = seen + ?2, new = new + ?3, open = open + ?4,
             reopened = reopened + ?5, fixed = fixed + ?6, pages = pages + 1
         WHERE id = ?1",
    )?
    .execute(params![
        run,
        counts.seen as i64,
        counts.new as i64,
        counts.open as i64,
        counts.reopened as i64,
        counts.fixed as i64
    ])?;
    Ok(counts)
}

/// What [`upsert_finding`] needs besides the finding.
#[derive(Clone, Copy)]
struct UpsertContext<'a> {
    scan_id: i64,
    run: RunId,
    at: &'a str,
    /// The run is older than the scan's newest success (see [`UPSERT_FINDING_SQL`]).
    stale: bool,
    /// The suppression rule that matches the finding, if any.
    rule: Option<&'a crate::config::SuppressRule>,
}

/// Upserts one finding; returns 1 when the row was inserted or updated, 0 when this run had
/// already seen it (a repeated page) or a newer run has decided it.
///
/// A no-op upsert on a row this run already stored is either the same sighting again or a
/// second finding with the same identity parts: the latter is stored under the next
/// occurrence's fingerprint (see [`Finding::fingerprint`]).
fn upsert_finding(
    conn: &Connection,
    stmt: &mut rusqlite::CachedStatement<'_>,
    up: UpsertContext<'_>,
    finding: &Finding,
) -> Result<u64, StoreError> {
    let UpsertContext {
        scan_id,
        run,
        at,
        stale,
        rule,
    } = up;
    let rule_until = rule.and_then(|r| r.until_word());
    let (kind, file_path, start_line, end_line, method, api_path, host) = match &finding.location {
        Location::Code {
            path,
            start_line,
            end_line,
        } => (
            "code",
            Some(path.as_str()),
            *start_line,
            *end_line,
            None,
            None,
            None,
        ),
        Location::Api { method, path, host } => (
            "api",
            None,
            None,
            None,
            Some(method.as_str()),
            Some(path.as_str()),
            Some(host.as_str()),
        ),
        Location::Unknown => ("unknown", None, None, None, None, None, None),
    };
    let verdict = finding.verdict.map(|v| v.as_str());
    for occurrence in 0u32.. {
        let fingerprint = finding.fingerprint(occurrence);
        let changed = stmt.execute(params![
            scan_id,
            fingerprint,
            finding.title,
            finding.severity.as_str(),
            finding.vendor_status,
            finding.cwe,
            finding.owasp,
            finding.rule_id,
            kind,
            file_path,
            start_line,
            end_line,
            method,
            api_path,
            host,
            finding.description,
            finding.remediation,
            finding.vendor_url,
            finding.vendor_id,
            finding.vendor_first_seen,
            finding.vendor_last_seen,
            finding.raw,
            at,
            run,
            verdict,
            FINGERPRINT_RECIPE,
            stale,
            rule.map(|r| r.state.as_str()),
            rule.map(|r| r.name.as_str()),
            rule.map(|r| r.reason.as_str()),
            rule_until,
        ])?;
        if changed > 0 {
            return Ok(changed as u64);
        }
        let existing: (i64, Option<String>, Option<u32>, Option<u32>) = conn
            .prepare_cached(
                "SELECT touched_run_id, vendor_id, start_line, end_line FROM findings
                 WHERE scan_id = ?1 AND fingerprint = ?2",
            )?
            .query_row(params![scan_id, fingerprint], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
        let (touched, vendor_id, start, end) = existing;
        if touched != run || finding.same_sighting(vendor_id.as_deref(), (start, end)) {
            return Ok(0);
        }
    }
    unreachable!("occurrences are unbounded")
}

fn read_run(conn: &Connection, id: RunId) -> Result<Option<RunRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = ?1"
    ))?;
    let mut rows = stmt.query(params![id])?;
    match rows.next()? {
        Some(row) => Ok(Some(run_from_row(row)?)),
        None => Ok(None),
    }
}

fn run_from_row(r: &Row<'_>) -> Result<RunRow, StoreError> {
    let count = |i: usize| -> Result<u64, StoreError> { Ok(r.get::<_, i64>(i)? as u64) };
    Ok(RunRow {
        id: r.get(0)?,
        scan: r.get(1)?,
        instance: r.get(2)?,
        vendor: r.get(3)?,
        bind_to: r.get(4)?,
        branch: r.get(5)?,
        trigger: r.get(6)?,
        state: RunState::parse(&r.get::<_, String>(7)?)?,
        vendor_scan_id: r.get(8)?,
        started_at: r.get(9)?,
        finished_at: r.get(10)?,
        counts: RunCounts {
            seen: count(11)?,
            new: count(12)?,
            open: count(13)?,
            reopened: count(14)?,
            fixed: count(15)?,
            pages: count(16)?,
            missing: count(18)?,
        },
        error: r.get(17)?,
    })
}

/// A location from the columns `location_kind, file_path, start_line, end_line, http_method,
/// api_path, api_host`, the first at index `first`.
fn location_from_row(r: &Row<'_>, first: usize) -> rusqlite::Result<Location> {
    let text = |i: usize| -> rusqlite::Result<String> {
        Ok(r.get::<_, Option<String>>(first + i)?.unwrap_or_default())
    };
    Ok(match r.get::<_, String>(first)?.as_str() {
        "code" => Location::Code {
            path: text(1)?,
            start_line: r.get(first + 2)?,
            end_line: r.get(first + 3)?,
        },
        "api" => Location::Api {
            method: text(4)?,
            path: text(5)?,
            host: text(6)?,
        },
        _ => Location::Unknown,
    })
}

fn finding_from_row(r: &Row<'_>) -> Result<FindingRow, StoreError> {
    let severity_word: String = r.get(8)?;
    let location = location_from_row(r, 13)?;
    Ok(FindingRow {
        fingerprint: r.get(0)?,
        scan: r.get(1)?,
        instance: r.get(2)?,
        vendor: r.get(3)?,
        bind_to: r.get(4)?,
        state: FindingState::parse(&r.get::<_, String>(5)?)?,
        finding: Finding {
            vendor_id: r.get(6)?,
            title: r.get(7)?,
            severity: severity_word
                .parse()
                .map_err(|_| unknown_word("severity", &severity_word))?,
            vendor_status: r.get(9)?,
            cwe: r.get(10)?,
            owasp: r.get(11)?,
            rule_id: r.get(12)?,
            location,
            description: r.get(20)?,
            remediation: r.get(21)?,
            vendor_url: r.get(22)?,
            vendor_first_seen: r.get(23)?,
            vendor_last_seen: r.get(24)?,
            raw: r.get(25)?,
            verdict: None,
        },
        first_seen: r.get(26)?,
        last_seen: r.get(27)?,
        times_seen: r.get::<_, i64>(28)? as u64,
        id: r.get(29)?,
        triage: triage::triage_from_row(r, 30)?,
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod attack_tests;
