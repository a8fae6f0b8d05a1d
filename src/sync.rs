//! One sync run: trigger → poll → fetch pages → normalize → store.
//!
//! The one place where connectors and the store meet. The CLI (`sync`, `scan`), the daemon
//! and the listener all start runs through [`run_scan`]; there is no second path.

use crate::config::{Config, ScanConfig};
use crate::store::{RunCounts, RunEnd, RunId, RunScope, RunState, Store, StoreError};
use crate::vendors::{ScanRequest, ScanStatus, Vendor, VendorError};
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
    /// Global and per-instance bounds on runs in flight.
    pub limits: RunLimits,
    /// Flipped to true when the process is asked to stop: runs finish their current page,
    /// commit, and end as `interrupted`.
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// The configured webhooks and the delivery task's wake-up; shared by every clone, so a
    /// reload reaches the task. Runs write their notifications through the store (see
    /// [`crate::store::Store::set_webhook_routes`]) and [`Outbox::wake`] the task.
    ///
    /// [`Outbox::wake`]: crate::webhooks::Outbox::wake
    pub outbox: crate::webhooks::Outbox,
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
    /// Stop waiting for the vendor scan at this instant and return as `start_only` does: the
    /// run stays `running` with its vendor scan id, for a daemon to resume
    /// (`scansync scan --timeout`). Only the wait for the vendor applies: once the vendor
    /// scan has finished, its findings are read to the end.
    pub detach_at: Option<tokio::time::Instant>,
    /// Called with progress lines for a terminal (`sync`'s progress display).
    pub progress: Option<Progress>,
    /// A run row already begun with [`begin_run`] for this run (same scan and options):
    /// the listener creates it before the run waits for its turn, to answer the webhook
    /// with the run id at once.
    pub run_id: Option<RunId>,
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
        config: &Config,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<SyncContext> {
        let mut store = Store::open(&config.store.path)?;
        store.set_webhook_routes(crate::webhooks::routes(config));
        let mut ctx = SyncContext {
            store: Arc::new(Mutex::new(store)),
            vendors: BTreeMap::new(),
            poll_interval: config.daemon.poll_interval,
            limits: RunLimits::new(config),
            stop,
            outbox: crate::webhooks::Outbox::new(config)?,
        };
        ctx.rebuild_vendors(config)?;
        Ok(ctx)
    }

    /// Rebuilds connectors and limits from a (re)loaded config, keeping the store. Runs in
    /// flight hold their own clone of the old context and finish with the old connectors.
    /// Webhooks are shared state: once this returns, every run that finishes (in flight or
    /// not) notifies the new webhooks, and the delivery task sends to the new targets.
    pub fn with_config(&self, config: &Config) -> anyhow::Result<SyncContext> {
        let mut ctx = self.clone();
        ctx.poll_interval = config.daemon.poll_interval;
        ctx.limits = RunLimits::new(config);
        let targets = crate::webhooks::Outbox::prepare(config)?;
        ctx.rebuild_vendors(config)?;
        // Nothing below can fail: the reload is all or nothing.
        ctx.outbox.install(targets);
        ctx.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_webhook_routes(crate::webhooks::routes(config));
        Ok(ctx)
    }

    fn rebuild_vendors(&mut self, config: &Config) -> anyhow::Result<()> {
        self.vendors.clear();
        for (name, instance) in &config.instances {
            let vendor = crate::vendors::connect(name, instance)
                .map_err(|e| anyhow::anyhow!("instance \"{name}\": {e}"))?;
            self.vendors.insert(name.clone(), Arc::from(vendor));
        }
        Ok(())
    }

    /// Runs `f` on the store off the async workers: a page's transaction takes milliseconds
    /// of blocking I/O that must not stall other runs' HTTP.
    pub async fn with_store<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store
                .lock()
                .map_err(|_| StoreError::Invalid("store lock poisoned by a panic".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("store task failed: {e}")))?
    }
}

/// Bounds on runs in flight: one across all scans, one per instance, so a burst of
/// schedules never floods a vendor. Shared by every caller of [`run_scan`].
#[derive(Clone)]
pub struct RunLimits {
    global: Arc<tokio::sync::Semaphore>,
    per_instance: BTreeMap<String, Arc<tokio::sync::Semaphore>>,
}

impl RunLimits {
    pub fn new(config: &Config) -> RunLimits {
        RunLimits {
            global: Arc::new(tokio::sync::Semaphore::new(
                config.daemon.concurrency.max(1),
            )),
            per_instance: config
                .instances
                .keys()
                .map(|name| {
                    let n = config.daemon.per_instance_concurrency.max(1);
                    (name.clone(), Arc::new(tokio::sync::Semaphore::new(n)))
                })
                .collect(),
        }
    }

    async fn acquire(
        &self,
        instance: &str,
    ) -> (
        tokio::sync::OwnedSemaphorePermit,
        Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        // The instance permit first: waiting for a busy vendor must not hold a global slot
        // that a run against an idle vendor could use.
        let inst = match self.per_instance.get(instance) {
            Some(s) => Some(s.clone().acquire_owned().await.expect("never closed")),
            None => None,
        };
        let global = self
            .global
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        (global, inst)
    }
}

/// The name a run of `scan` with `opts` is stored under: the scan's name, or `name@branch`
/// for a branch other than the configured one. Runs under one name never overlap.
pub fn store_scan_name(scan: &ScanConfig, opts: &RunOptions) -> String {
    match (&opts.branch, &scan.branch) {
        (Some(b), configured) if configured.as_deref() != Some(b.as_str()) => {
            format!("{}@{}", scan.name, b)
        }
        _ => scan.name.clone(),
    }
}

/// Records the start of a run of `scan` now (a `running` row) and returns its id, for a
/// caller that hands the id out before the run gets its permits; pass it on in
/// [`RunOptions::run_id`].
pub async fn begin_run(
    ctx: &SyncContext,
    scan: &ScanConfig,
    opts: &RunOptions,
) -> Result<RunId, SyncError> {
    let vendor = ctx
        .vendors
        .get(&scan.instance)
        .ok_or_else(|| SyncError::NoConnector(scan.name.clone(), scan.instance.clone()))?;
    let scope = scope_for(scan, vendor.name(), opts);
    Ok(ctx.with_store(move |s| s.begin_run(&scope)).await?)
}

/// The store-side identity of a run. A branch other than the configured one gets its own
/// lifecycle (`name@branch`): a CI scan of a feature branch must not mark the main branch's
/// findings fixed.
pub fn scope_for(scan: &ScanConfig, vendor: &str, opts: &RunOptions) -> RunScope {
    let branch = opts.branch.clone().or_else(|| scan.branch.clone());
    let store_scan = store_scan_name(scan, opts);
    RunScope {
        scan: store_scan,
        instance: scan.instance.clone(),
        vendor: vendor.to_string(),
        bind_to: scan.bind_to.clone(),
        branch,
        trigger: if opts.trigger.is_empty() {
            "cli".into()
        } else {
            opts.trigger.clone()
        },
    }
}

/// Why the body of a run stopped early.
enum Stopped {
    Vendor(VendorError),
    Store(StoreError),
    Interrupted,
}

impl From<VendorError> for Stopped {
    fn from(e: VendorError) -> Self {
        Stopped::Vendor(e)
    }
}
impl From<StoreError> for Stopped {
    fn from(e: StoreError) -> Self {
        Stopped::Store(e)
    }
}

/// Runs one scan to its end (or to `start_only`), recording everything on a run row.
///
/// Vendor failures end the run as `failed` with the error on the run row (and in the
/// summary); only a store failure is returned as an error. A run that is stopped (SIGTERM)
/// commits the page it has, ends as `interrupted`, and never marks anything fixed.
pub async fn run_scan(
    ctx: &SyncContext,
    scan: &ScanConfig,
    opts: RunOptions,
) -> Result<RunSummary, SyncError> {
    let vendor = ctx
        .vendors
        .get(&scan.instance)
        .cloned()
        .ok_or_else(|| SyncError::NoConnector(scan.name.clone(), scan.instance.clone()))?;
    let scope = scope_for(scan, vendor.name(), &opts);
    let _permits = ctx.limits.acquire(&scan.instance).await;

    let run_id = match opts.run_id {
        Some(id) => id,
        None => {
            let scope = scope.clone();
            ctx.with_store(move |s| s.begin_run(&scope)).await?
        }
    };
    let started = std::time::Instant::now();
    let span = tracing::info_span!("run", scan = %scope.scan, run_id);
    let body = run_body(ctx, vendor.as_ref(), scan, &scope, run_id, &opts);
    let outcome = {
        use tracing::Instrument;
        tokio::time::timeout(scan.timeout, body)
            .instrument(span.clone())
            .await
    };
    let _enter = span.enter();
    let end = match outcome {
        Ok(Ok(BodyEnd::Complete)) => RunEnd::Succeeded,
        Ok(Ok(BodyEnd::LeftRunning)) => {
            // Left running on purpose (`start_only`, `detach_at`): the vendor scan goes on,
            // and a daemon resumes polling it from the recorded vendor scan id.
            let row = ctx.with_store(move |s| s.run(run_id)).await?;
            let row = row.ok_or_else(|| StoreError::Invalid(format!("run {run_id} vanished")))?;
            return Ok(RunSummary {
                run_id,
                scan: scope.scan,
                state: row.state,
                vendor_scan_id: row.vendor_scan_id,
                counts: row.counts,
                open_by_severity: BTreeMap::new(),
                error: None,
            });
        }
        Ok(Err(Stopped::Interrupted)) => RunEnd::Interrupted("scansync was asked to stop".into()),
        Ok(Err(Stopped::Vendor(e))) => RunEnd::Failed(e.to_string()),
        Ok(Err(Stopped::Store(e))) => {
            // Try to record the failure; the store error itself is what the caller sees.
            let msg = e.to_string();
            let _ = ctx
                .with_store(move |s| s.finish_run(run_id, RunEnd::Failed(msg)))
                .await;
            crate::metrics::global().run_finished(
                &scope.scan,
                RunState::Failed.as_str(),
                started.elapsed(),
            );
            ctx.outbox.wake();
            return Err(SyncError::Store(e));
        }
        Err(_) => RunEnd::TimedOut(format!(
            "the run exceeded the scan's timeout of {}s",
            scan.timeout.as_secs()
        )),
    };
    match &end {
        RunEnd::Succeeded => tracing::info!("run succeeded"),
        RunEnd::Failed(e) => tracing::warn!(error = %e, "run failed"),
        RunEnd::Interrupted(e) | RunEnd::TimedOut(e) => {
            tracing::warn!(reason = %e, "run ended early")
        }
    }
    let store_scan = scope.scan.clone();
    let (row, open_by_severity) = ctx
        .with_store(move |s| {
            let row = s.finish_run(run_id, end)?;
            let open = s.open_by_severity(&store_scan)?;
            Ok((row, open))
        })
        .await?;
    // The run's notifications (if any) were committed with its end.
    ctx.outbox.wake();
    tracing::info!(
        new = row.counts.new,
        open = row.counts.open,
        fixed = row.counts.fixed,
        reopened = row.counts.reopened,
        state = ?row.state,
        "run finished"
    );
    crate::metrics::global().run_finished(&scope.scan, row.state.as_str(), started.elapsed());
    Ok(RunSummary {
        run_id,
        scan: scope.scan,
        state: row.state,
        vendor_scan_id: row.vendor_scan_id,
        counts: row.counts,
        open_by_severity,
        error: row.error,
    })
}

enum BodyEnd {
    Complete,
    /// The vendor scan was started (or waited for) and is still going; the run stays
    /// `running`.
    LeftRunning,
}

/// trigger → poll → pages. Each page is committed before the next is fetched, so a crash or
/// stop loses at most the page in flight.
async fn run_body(
    ctx: &SyncContext,
    vendor: &dyn Vendor,
    scan: &ScanConfig,
    scope: &RunScope,
    run_id: RunId,
    opts: &RunOptions,
) -> Result<BodyEnd, Stopped> {
    let progress = |line: &str| {
        if let Some(p) = &opts.progress {
            (p.0)(line);
        }
    };
    let mut stop = ctx.stop.clone();
    if *stop.borrow() {
        return Err(Stopped::Interrupted);
    }

    // An unknown asset must fail the run: a "complete" empty listing would mark every
    // finding of the scan fixed.
    vendor.resolve_target(&scan.bind_to).await?;

    let vendor_scan_id = if vendor.triggers_scans() {
        let id = match &opts.resume_vendor_scan_id {
            Some(id) => {
                tracing::info!(vendor_scan_id = %id, "resuming the vendor scan started before the restart");
                id.clone()
            }
            None => {
                let req = ScanRequest {
                    bind_to: scan.bind_to.clone(),
                    branch: scope.branch.clone(),
                    environment: scan.environment.clone(),
                    tags: scan.tags.clone(),
                    metadata: scan.metadata.clone(),
                };
                let id = vendor.start_scan(&req).await?.ok_or_else(|| {
                    Stopped::Vendor(VendorError::Protocol {
                        vendor: vendor.name(),
                        url: String::new(),
                        detail: "the vendor started no scan".into(),
                    })
                })?;
                tracing::info!(vendor_scan_id = %id, "vendor scan started");
                id
            }
        };
        {
            let id = id.clone();
            ctx.with_store(move |s| s.set_vendor_scan_id(run_id, &id))
                .await?;
        }
        progress(&format!("{}: vendor scan {id} started", scope.scan));
        if opts.start_only {
            return Ok(BodyEnd::LeftRunning);
        }
        let waited = poll_until_finished(
            ctx,
            vendor,
            &id,
            &scope.scan,
            &mut stop,
            opts.detach_at,
            &progress,
        )
        .await?;
        if waited == Waited::Detached {
            tracing::info!(vendor_scan_id = %id, "stopped waiting; the run is left for a daemon to resume");
            return Ok(BodyEnd::LeftRunning);
        }
        Some(id)
    } else {
        None
    };

    let mut pages = vendor
        .findings(&scan.bind_to, vendor_scan_id.as_deref())
        .await?;
    let mut page_no = 0u64;
    let mut seen = 0u64;
    while let Some(mut page) = pages.next_page().await? {
        page_no += 1;
        if let Some(min) = scan.min_severity {
            page.retain(|f| f.severity >= min);
        }
        let counts = ctx
            .with_store(move |s| s.upsert_page(run_id, &page))
            .await?;
        seen += counts.seen;
        tracing::debug!(page = page_no, seen, "page stored");
        progress(&format!("{}: page {page_no}, {seen} findings", scope.scan));
        if *stop.borrow() {
            return Err(Stopped::Interrupted);
        }
    }
    Ok(BodyEnd::Complete)
}

/// How the wait for a vendor scan ended.
#[derive(Debug, PartialEq)]
enum Waited {
    Finished,
    /// `detach_at` passed first.
    Detached,
}

async fn poll_until_finished(
    ctx: &SyncContext,
    vendor: &dyn Vendor,
    vendor_scan_id: &str,
    scan_name: &str,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    detach_at: Option<tokio::time::Instant>,
    progress: &impl Fn(&str),
) -> Result<Waited, Stopped> {
    let detach = async {
        match detach_at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(detach);
    loop {
        // A status call hanging on a slow vendor must not hold the caller past `detach_at`
        // either; dropping a status read mid-flight is harmless.
        let status = tokio::select! {
            status = vendor.scan_status(vendor_scan_id) => status?,
            _ = &mut detach => return Ok(Waited::Detached),
        };
        match status {
            ScanStatus::Finished => return Ok(Waited::Finished),
            ScanStatus::Failed { state, message } => {
                return Err(Stopped::Vendor(VendorError::ScanFailed {
                    vendor: vendor.name(),
                    scan_id: vendor_scan_id.to_string(),
                    state,
                    message,
                }))
            }
            ScanStatus::Queued => progress(&format!("{scan_name}: queued at the vendor")),
            ScanStatus::Running { progress: p } => progress(&format!(
                "{scan_name}: scanning{}",
                p.map(|p| format!(" {p}%")).unwrap_or_default()
            )),
        }
        tokio::select! {
            _ = tokio::time::sleep(ctx.poll_interval) => {}
            _ = stop.wait_for(|s| *s) => return Err(Stopped::Interrupted),
            _ = &mut detach => return Ok(Waited::Detached),
        }
    }
}
