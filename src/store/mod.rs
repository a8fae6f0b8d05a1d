//! The SQLite store: the only module that holds SQL.
//!
//! Tables (`instances`, `scans`, `sync_runs`, `findings`, `finding_events`) are a documented
//! interface: operators query the file with `sqlite3`. Schema changes are numbered
//! migrations in `migrations/`, applied at open.

use crate::finding::{Finding, Severity};
use std::path::Path;

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
}

/// Who a run is for. Copied onto the run row so history survives config edits.
#[derive(Debug, Clone, Default)]
pub struct RunScope {
    pub scan: String,
    pub instance: String,
    pub vendor: String,
    pub bind_to: String,
    pub branch: Option<String>,
    /// What started it: `schedule`, `cli`, `webhook`, `resume`, …
    pub trigger: String,
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
    /// Not seen in a complete successful run (set by `finish_run`).
    pub fixed: u64,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingState {
    New,
    Open,
    Fixed,
    Reopened,
    /// Set locally; survives re-imports.
    FalsePositive,
    /// Set locally; survives re-imports.
    Accepted,
}

/// A `findings` row as the CLI and exports read it.
#[derive(Debug, Clone)]
pub struct FindingRow {
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
}

/// Filters for [`Store::for_each_finding`]; empty vectors mean "any".
#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    pub scans: Vec<String>,
    pub states: Vec<FindingState>,
    /// This severity or worse.
    pub min_severity: Option<Severity>,
}

/// A `finding_events` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingEvent {
    pub run_id: Option<RunId>,
    /// `created`, `severity_changed`, `status_changed`, `fixed`, `reopened`, `state_set`.
    pub kind: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub at: String,
}

/// The store. One writer connection; readers open their own (WAL lets them run beside it).
pub struct Store {}

impl Store {
    /// Opens (creating file and parent folder), applies migrations, sets WAL, foreign keys
    /// and busy_timeout. Does not touch runs: see [`Store::recover_unfinished`].
    pub fn open(_path: &Path) -> Result<Store, StoreError> {
        todo!("store helper")
    }
    pub fn begin_run(&mut self, _scope: &RunScope) -> Result<RunId, StoreError> {
        todo!("store helper")
    }
    pub fn set_vendor_scan_id(&mut self, _run: RunId, _id: &str) -> Result<(), StoreError> {
        todo!("store helper")
    }
    pub fn upsert_page(&mut self, _run: RunId, _page: &[Finding]) -> Result<RunCounts, StoreError> {
        todo!("store helper")
    }
    pub fn finish_run(&mut self, _run: RunId, _end: RunEnd) -> Result<RunRow, StoreError> {
        todo!("store helper")
    }
    pub fn run(&self, _id: RunId) -> Result<Option<RunRow>, StoreError> {
        todo!("store helper")
    }
    pub fn recover_unfinished(&mut self) -> Result<Vec<RunRow>, StoreError> {
        todo!("store helper")
    }
    pub fn open_by_severity(
        &self,
        _scan: &str,
    ) -> Result<std::collections::BTreeMap<Severity, u64>, StoreError> {
        todo!("store helper")
    }
    pub fn runs(&self, _scan: Option<&str>, _limit: usize) -> Result<Vec<RunRow>, StoreError> {
        todo!("store helper")
    }
    pub fn last_run(&self, _scan: &str) -> Result<Option<RunRow>, StoreError> {
        todo!("store helper")
    }
    pub fn for_each_finding<E: From<StoreError>>(
        &self,
        _filter: &FindingFilter,
        _f: impl FnMut(FindingRow) -> Result<(), E>,
    ) -> Result<(), E> {
        todo!("store helper")
    }
    pub fn findings(&self, _filter: &FindingFilter) -> Result<Vec<FindingRow>, StoreError> {
        todo!("store helper")
    }
}
