//! The rows and words of the store's API: runs, findings, their states and counts.

use super::*;

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

    pub(super) fn parse(word: &str) -> Result<RunState, StoreError> {
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

    pub(super) fn parse(word: &str) -> Result<FindingState, StoreError> {
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
pub(super) fn unknown_word(what: &str, word: &str) -> StoreError {
    StoreError::Invalid(format!(
        "unknown {what} \"{word}\" in the store file; was it edited by hand?"
    ))
}
