//! One sync run: trigger → poll → fetch pages → normalize → store.
//!
//! The one place where connectors and the store meet. The CLI (`sync`, `scan`), the daemon
//! and the listener all start runs through [`run_scan`]; there is no second path.

use crate::config::{Config, ScanConfig};
use crate::store::{RunCounts, RunId, RunState, Store, StoreError};
use crate::vendors::{Vendor, VendorError};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The store, shared by every run in the process. SQLite has one writer at a time anyway;
/// the mutex makes that explicit and keeps each page's transaction whole.
pub type SharedStore = Arc<Mutex<Store>>;

/// What runs need, built once from a validated config (and rebuilt on reload).
#[derive(Clone)]
pub struct SyncContext {
    pub store: SharedStore,
    /// Connector per instance name.
    pub vendors: BTreeMap<String, Arc<dyn Vendor>>,
    /// How often a vendor scan's status is polled.
    pub poll_interval: Duration,
    /// Flipped to true when the process is asked to stop: runs finish their current page,
    /// commit, and end as `interrupted`.
    pub stop: tokio::sync::watch::Receiver<bool>,
}

/// How one run is started.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `schedule`, `cli`, `webhook`, `resume`, … (recorded on the run).
    pub trigger: String,
    /// Overrides the scan's configured branch (`scansync scan -b`, webhooks).
    pub branch: Option<String>,
    /// Poll this vendor scan instead of starting a new one (resume after a restart).
    pub resume_vendor_scan_id: Option<String>,
    /// Return right after the vendor scan is started (`scansync scan --async`).
    pub start_only: bool,
    /// Called with progress lines for a terminal (`sync`'s progress display).
    pub progress: Option<Progress>,
}

/// A sink for human progress lines; `None` when output is not a terminal.
#[derive(Clone)]
pub struct Progress(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// The outcome of one run, as printed by `sync`/`scan` and recorded on the run row.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: RunId,
    pub scan: String,
    pub state: RunState,
    pub vendor_scan_id: Option<String>,
    pub counts: RunCounts,
    /// Open findings of this scan by severity after the run (for `scan` thresholds).
    pub open_by_severity: BTreeMap<crate::finding::Severity, u64>,
    pub error: Option<String>,
}

/// Why a run could not even be recorded (the store failed). Vendor failures are not
/// errors here: they end the run as `failed` with the error text on the run row.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("scan \"{0}\" names instance \"{1}\", which has no connector")]
    NoConnector(String, String),
    #[error(transparent)]
    Vendor(#[from] VendorError),
}

impl SyncContext {
    /// Opens the store and builds a connector per instance.
    pub fn new(
        _config: &Config,
        _stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<SyncContext> {
        todo!("sync: lead")
    }
}

/// Runs one scan to its end (or to `start_only`), recording everything on a run row.
pub async fn run_scan(
    _ctx: &SyncContext,
    _scan: &ScanConfig,
    _opts: RunOptions,
) -> Result<RunSummary, SyncError> {
    todo!("sync: lead")
}
