//! One sync run: trigger → poll → fetch pages → normalize → store.
//!
//! The one place where connectors and the store meet. The CLI (`sync`, `scan`), the daemon
//! and the listener all start runs through [`run_scan`]; there is no second path.

use crate::config::{Config, ScanConfig};
use crate::finding::Finding;
use crate::store::{
    DueRunTaken, RunCounts, RunEnd, RunId, RunScope, RunState, ScanClaim, Store, StoreError,
};
use crate::vendors::{ScanRequest, ScanStatus, Vendor, VendorError};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::SharedStore;

/// What runs need, built once from a validated config (and rebuilt on reload).
#[derive(Clone)]
pub struct SyncContext {
    pub store: SharedStore,
    /// Connector per instance name.
    pub vendors: BTreeMap<String, Arc<dyn Vendor>>,
    /// How often a vendor scan's status is polled.
    pub poll_interval: Duration,
    /// `[daemon] fix_guard`, for scans without their own.
    pub fix_guard: f64,
    /// Global and per-instance bounds on runs in flight, shared by every clone (a reload
    /// that changes the numbers makes new ones; see [`RunLimits::reloaded`]).
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
    /// A read-only connection of its own for what only reads (`/metrics`, `/readyz`): WAL
    /// lets it read while the writer commits pages, so a scrape never holds up a run.
    pub reader: crate::store::Reader,
    /// When the store last answered the heartbeat; shared by every clone. The systemd
    /// watchdog stops pinging when it is stale, so a dead store gets the service restarted.
    pub store_beat: Arc<StoreBeat>,
}

/// The last time the store took a heartbeat write.
#[derive(Debug)]
pub struct StoreBeat {
    origin: std::time::Instant,
    /// Milliseconds after `origin`.
    last_ms: std::sync::atomic::AtomicU64,
}

impl StoreBeat {
    fn new() -> StoreBeat {
        StoreBeat {
            origin: std::time::Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn beat(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// True when the store answered within `within` (or the process is younger than that).
    pub fn fresh(&self, within: Duration) -> bool {
        let last = Duration::from_millis(self.last_ms.load(std::sync::atomic::Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last) <= within
    }
}

/// How one run is started.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `schedule`, `cli`, `webhook`, `resume`, … (recorded on the run).
    pub trigger: String,
    /// Overrides the scan's configured branch (`scansync scan -b`, webhooks).
    pub branch: Option<String>,
    /// Poll this vendor scan instead of starting a new one.
    pub resume_vendor_scan_id: Option<String>,
    /// Take over this run, which a process that is gone left `running` with its vendor scan
    /// (`scansync scan --async` or `--timeout`, a killed daemon): once this run holds its
    /// permits, that row is marked `interrupted` and this run polls its vendor scan instead
    /// of starting one. Taking the row only then leaves it to the next daemon when this one
    /// is stopped while waiting. [`SyncError::NotAbandoned`] when another process took it
    /// over first.
    pub adopt_run: Option<RunId>,
    /// Return right after the vendor scan is started (`scansync scan --async`).
    pub start_only: bool,
    /// Stop waiting for the vendor scan at this instant and return as `start_only` does: the
    /// run stays `running` with its vendor scan id, for a daemon to resume
    /// (`scansync scan --timeout`). Only the wait for the vendor applies: once the vendor
    /// scan has finished, its findings are read to the end.
    pub detach_at: Option<tokio::time::Instant>,
    /// Called with progress lines for a terminal (`sync`'s progress display).
    pub progress: Option<Progress>,
    /// Finish a run of this scan that a process which is gone left with a vendor scan
    /// (rather than start a second vendor scan): the daemon's schedules. Pushes and the CLI
    /// ask for a scan of now, so they do not.
    pub prefer_adoption: bool,
    /// Do not wait when another run holds the scan: return [`SyncError::Busy`] at once
    /// (`scan --no-wait`, `sync --no-wait`).
    pub no_wait: bool,
    /// Called once when the run has to wait for another run of its scan, with the other
    /// run's id (if known) and who runs it.
    pub on_wait: Option<WaitNotice>,
    /// A scheduled run's due time: when, by the time this run could hold its scan, a
    /// scheduled run of the scan by another process that started at or after this instant
    /// has succeeded, that run served the due time and this one ends before it begins
    /// ([`SyncError::Covered`]). Two daemons on one store thus run a due time once, not
    /// once each after waiting for the other. `None` (the CLI, pushes): always run.
    pub covered_since: Option<chrono::DateTime<chrono::Utc>>,
    /// Stop waiting for another run of the scan at this instant ([`SyncError::Busy`]):
    /// `scan --timeout` bounds the whole command, not only the wait for the vendor.
    pub wait_until: Option<tokio::time::Instant>,
    /// A run row already begun for this run (same scan and options), with [`begin_run`] or
    /// [`crate::store::Store::claim_push`]: the listener records it with the push's delivery
    /// before the run waits for its turn, to answer the webhook with the run id at once.
    pub run_id: Option<RunId>,
}

/// What a [`WaitNotice`] is told: `(scan, the other run's id, who runs it)`.
pub type WaitFn = dyn Fn(&str, Option<RunId>, &str) + Send + Sync;

/// Told that a run waits for another run of the same scan.
#[derive(Clone)]
pub struct WaitNotice(pub Arc<WaitFn>);

impl std::fmt::Debug for WaitNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WaitNotice")
    }
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

/// Why a run left by a process that is gone without a vendor scan id is ended, not taken
/// over (the daemon's sweep and [`RunOptions::adopt_run`] say the same).
pub const NO_VENDOR_SCAN: &str = "it has no vendor scan to poll (it stopped before starting \
     one, or the vendor has none); pages stored before are kept, and the next run reads the \
     listing again";

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
    /// The process was asked to stop while the run waited for its turn (a concurrency
    /// permit): nothing was started at the vendor and nothing was recorded.
    #[error("scan \"{0}\" did not run: scansync was asked to stop before the run could start")]
    StoppedBeforeStart(String),
    /// [`RunOptions::adopt_run`] named a run that ended or that a live process owns by the
    /// time this run could take it over (or whose scan is busy): nothing to do now.
    #[error("run {0} is no longer left unfinished: another process took it over or it ended")]
    NotAbandoned(RunId),
    /// Another run holds the scan and this one may not wait ([`RunOptions::no_wait`]) or
    /// not longer ([`RunOptions::wait_until`]).
    #[error("scan \"{scan}\" is being run by run {} ({owner}); not waiting for it (--no-wait, or --timeout passed)", .run_id.map_or_else(|| "?".to_string(), |r| r.to_string()))]
    Busy {
        scan: String,
        run_id: Option<RunId>,
        owner: String,
    },
    /// [`RunOptions::covered_since`]: another process's scheduled run served this due time.
    #[error("scan \"{scan}\" is not run again: run {run_id} of another scansync process ran it for this due time and succeeded")]
    Covered { scan: String, run_id: RunId },
}

impl SyncContext {
    /// Opens the store and builds a connector per instance.
    pub fn new(
        config: &Config,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<SyncContext> {
        let mut store = Store::open_at(&config.store.location)?;
        store.set_webhook_routes(config.webhook_routes(), crate::webhooks::payload::body);
        let reader = Store::open_read_only_at(&config.store.location)?;
        store.set_suppress_rules(config.suppress.clone());
        let mut ctx = SyncContext {
            store: Arc::new(Mutex::new(store)),
            vendors: BTreeMap::new(),
            poll_interval: config.daemon.poll_interval,
            fix_guard: config.daemon.fix_guard,
            limits: RunLimits::from_config(config),
            stop,
            outbox: crate::webhooks::Outbox::new(config)?,
            store_beat: Arc::new(StoreBeat::new()),
            reader: crate::store::Reader::new(reader),
        };
        ctx.rebuild_vendors(config)?;
        ctx.start_heartbeat();
        Ok(ctx)
    }

    /// Keeps this process's owner row and scan leases alive while the store is in use (see
    /// [`crate::store::heartbeat_every`]). The task holds the store weakly and ends with it.
    /// Outside a tokio runtime (some tests) there is no heartbeat: leases then last their
    /// full TTL.
    fn start_heartbeat(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = Arc::downgrade(&self.store);
        let alive = self.store_beat.clone();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(crate::store::heartbeat_every()).await;
                let Some(store) = store.upgrade() else { return };
                let beat = tokio::task::spawn_blocking(move || {
                    store.lock().unwrap_or_else(|e| e.into_inner()).heartbeat()
                })
                .await;
                match beat {
                    Ok(Ok(lost)) => {
                        alive.beat();
                        for scan in lost {
                            tracing::warn!(scan = %scan, "another process took this scan's lease: the run here stores nothing more");
                        }
                    }
                    Ok(Err(e)) => tracing::warn!("store heartbeat failed: {e}; retrying"),
                    Err(_) => return,
                }
            }
        });
    }

    /// Says goodbye to the store before the process exits: releases its leases and owner
    /// row, so runs it leaves `running` on purpose are adopted by a daemon at once.
    pub async fn release(&self) {
        if let Err(e) = self.with_store(|s| s.release_owner()).await {
            tracing::warn!(
                "could not release this process's leases: {e}; they expire by themselves"
            );
        }
    }

    /// Rebuilds connectors and limits from a (re)loaded config, keeping the store. Runs in
    /// flight hold their own clone of the old context and finish with the old connectors.
    /// Webhooks are shared state: once this returns, every run that finishes (in flight or
    /// not) notifies the new webhooks, and the delivery task sends to the new targets.
    pub fn with_config(&self, config: &Config) -> anyhow::Result<SyncContext> {
        let mut ctx = self.clone();
        ctx.poll_interval = config.daemon.poll_interval;
        ctx.fix_guard = config.daemon.fix_guard;
        ctx.limits = self.limits.reloaded(config);
        let targets = crate::webhooks::Outbox::prepare(config)?;
        ctx.rebuild_vendors(config)?;
        // Nothing below can fail: the reload is all or nothing.
        ctx.outbox.install(targets);
        let mut store = ctx.store.lock().unwrap_or_else(|e| e.into_inner());
        store.set_webhook_routes(config.webhook_routes(), crate::webhooks::payload::body);
        store.set_suppress_rules(config.suppress.clone());
        drop(store);
        Ok(ctx)
    }

    fn rebuild_vendors(&mut self, config: &Config) -> anyhow::Result<()> {
        self.vendors.clear();
        for (name, instance) in &config.instances {
            let vendor = crate::vendors::connect_stoppable(name, instance, Some(self.stop.clone()))
                .map_err(|e| anyhow::anyhow!("instance \"{name}\": {e}"))?;
            self.vendors.insert(name.clone(), Arc::from(vendor));
        }
        Ok(())
    }

    /// Runs `f` on the writer off the async workers (see [`crate::store::with_store`]).
    pub async fn with_store<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        crate::store::with_store(&self.store, f).await
    }

    /// [`SyncContext::with_store`] started at once (see [`crate::store::start_store`]).
    pub fn start_store<T, F>(&self, f: F) -> impl Future<Output = Result<T, StoreError>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        crate::store::start_store(&self.store, f)
    }

    /// What webhook delivery needs of this context.
    pub fn delivery(&self) -> crate::webhooks::Delivery {
        crate::webhooks::Delivery {
            store: self.store.clone(),
            outbox: self.outbox.clone(),
        }
    }
}

/// Bounds on runs in flight: one across all scans, one per instance, so a burst of
/// schedules, pushes and CLI runs never floods a vendor. The one limiter of the process:
/// [`run_scan`] takes its permits, whoever calls it (`sync`, `scan`, the daemon's schedules,
/// webhook-triggered and resumed runs), and holds them for the run's whole life.
#[derive(Clone)]
pub struct RunLimits {
    concurrency: usize,
    per_instance_concurrency: usize,
    global: Arc<Semaphore>,
    /// Made on first use, so an instance added by a reload needs no special case.
    per_instance: Arc<Mutex<BTreeMap<String, Arc<Semaphore>>>>,
}

/// The permits a run holds until it ends; dropping them lets the next run in.
pub struct RunPermits {
    _instance: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

impl RunLimits {
    /// `concurrency` runs at once in all, `per_instance_concurrency` per instance (each at
    /// least 1).
    pub fn new(concurrency: usize, per_instance_concurrency: usize) -> RunLimits {
        let concurrency = concurrency.max(1);
        RunLimits {
            concurrency,
            per_instance_concurrency: per_instance_concurrency.max(1),
            global: Arc::new(Semaphore::new(concurrency)),
            per_instance: Arc::default(),
        }
    }

    /// The limits of `[daemon]`.
    pub fn from_config(config: &Config) -> RunLimits {
        RunLimits::new(
            config.daemon.concurrency,
            config.daemon.per_instance_concurrency,
        )
    }

    /// The limits after a reload to `config`: these very semaphores when the numbers did not
    /// change (runs in flight keep counting against them), fresh ones for new runs when they
    /// did (runs in flight finish on the old ones, so for a moment both sets count).
    pub fn reloaded(&self, config: &Config) -> RunLimits {
        let new = RunLimits::from_config(config);
        if (new.concurrency, new.per_instance_concurrency)
            == (self.concurrency, self.per_instance_concurrency)
        {
            self.clone()
        } else {
            new
        }
    }

    fn instance(&self, instance: &str) -> Arc<Semaphore> {
        let n = self.per_instance_concurrency;
        self.per_instance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(instance.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(n)))
            .clone()
    }

    /// Waits for an `instance` permit, then a global one. `None` when `stop` is (or becomes)
    /// set first: the caller starts nothing. Stop wins over a permit that frees up at the
    /// same moment.
    pub async fn acquire(
        &self,
        instance: &str,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Option<RunPermits> {
        let (per_instance, global) = (self.instance(instance), self.global.clone());
        let stop_requested = async {
            if stop.wait_for(|s| *s).await.is_err() {
                // The sender is gone: nobody can ask this run to stop any more.
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            biased;
            _ = stop_requested => None,
            permits = async {
                // The instance permit first: waiting for a busy vendor must not hold a global
                // slot that a run against an idle vendor could use.
                let instance = per_instance.acquire_owned().await.ok()?;
                let global = global.acquire_owned().await.ok()?;
                Some(RunPermits { _instance: instance, _global: global })
            } => permits,
        }
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
/// caller that hands the id out before the run gets its permits (a push's runs are begun
/// with its delivery instead, by [`crate::store::Store::claim_push`]); pass it on in
/// [`RunOptions::run_id`]. A run stopped before it could start ends that row `interrupted`
/// ([`end_unstarted_run`]).
pub async fn begin_run(
    ctx: &SyncContext,
    scan: &ScanConfig,
    opts: &RunOptions,
) -> Result<RunId, SyncError> {
    let vendor = ctx
        .vendors
        .get(&scan.instance)
        .ok_or_else(|| SyncError::NoConnector(scan.name.clone(), scan.instance.clone()))?;
    let scope = scope_for(scan, vendor.name(), opts, ctx.fix_guard);
    Ok(ctx.with_store(move |s| s.begin_queued_run(&scope)).await?)
}

/// Ends a run row begun for [`RunOptions::run_id`] whose run never started because the
/// process is stopping: `interrupted` with the reason, nothing fetched, nothing marked
/// fixed. The row stays rather than vanish, since whoever triggered the run was told its id.
pub async fn end_unstarted_run(ctx: &SyncContext, run_id: RunId) -> Result<RunSummary, SyncError> {
    let end = RunEnd::Interrupted("scansync stopped before the run could start".into());
    let row = ctx.with_store(move |s| s.finish_run(run_id, end)).await?;
    Ok(RunSummary {
        run_id,
        scan: row.scan,
        state: row.state,
        vendor_scan_id: row.vendor_scan_id,
        counts: row.counts,
        open_by_severity: BTreeMap::new(),
        error: row.error,
    })
}

/// The store-side identity of a run. A branch other than the configured one gets its own
/// lifecycle (`name@branch`): a CI scan of a feature branch must not mark the main branch's
/// findings fixed.
pub fn scope_for(
    scan: &ScanConfig,
    vendor: &str,
    opts: &RunOptions,
    default_fix_guard: f64,
) -> RunScope {
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
        fix_guard: scan.fix_guard.unwrap_or(default_fix_guard),
        min_severity: scan.min_severity,
    }
}

/// Why the body of a run stopped early.
enum Stopped {
    Vendor(VendorError),
    Store(StoreError),
    Interrupted,
    /// Asked to stop while a vendor scan it started (or resumed) is still the source of
    /// truth: the run is left `running` for adoption, never thrown away.
    Detached,
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
/// The run first holds its scan's lease (waiting while another run of the scan, in any
/// process, holds it; see [`crate::store::ScanClaim`]). Vendor failures end the run as
/// `failed` with the error on the run row (and in the summary); only a store failure is
/// returned as an error. A run that is stopped (SIGTERM) commits the page it has and never
/// marks anything fixed: while a vendor scan it started is the source of its findings it
/// stays `running` for a daemon to adopt, otherwise it ends `interrupted`.
pub async fn run_scan(
    ctx: &SyncContext,
    scan: &ScanConfig,
    mut opts: RunOptions,
) -> Result<RunSummary, SyncError> {
    let vendor = ctx
        .vendors
        .get(&scan.instance)
        .cloned()
        .ok_or_else(|| SyncError::NoConnector(scan.name.clone(), scan.instance.clone()))?;
    let mut scope = scope_for(scan, vendor.name(), &opts, ctx.fix_guard);
    let mut stop = ctx.stop.clone();
    let Some(permits) = ctx.limits.acquire(&scan.instance, &mut stop).await else {
        return match opts.run_id {
            Some(run_id) => end_unstarted_run(ctx, run_id).await,
            None => Err(SyncError::StoppedBeforeStart(scope.scan)),
        };
    };
    // Held until the run ends; let go while the run waits for its scan's lease.
    let mut slot = Slot {
        instance: &scan.instance,
        permits: Some(permits),
    };
    let adopted = match opts.adopt_run {
        Some(left) => match ctx.with_store(move |s| s.adopt_run(left)).await? {
            Some(Ok(row)) => Claimed::Adopted(Box::new(row)),
            _ => return Err(SyncError::NotAbandoned(left)),
        },
        None => match claim_scan(ctx, &scope, &opts, &mut stop, &mut slot).await {
            Ok(claimed) => claimed,
            Err(e @ SyncError::StoppedBeforeStart(_)) => {
                return match opts.run_id {
                    Some(run_id) => end_unstarted_run(ctx, run_id).await,
                    None => Err(e),
                }
            }
            Err(e) => return Err(e),
        },
    };
    let run_id = match adopted {
        Claimed::Begun(run_id) => run_id,
        Claimed::Adopted(row) => {
            let left = row.id;
            // The run goes on by what it was started with, whatever the config says now.
            scope.scan = row.scan.clone();
            scope.bind_to = row.bind_to.clone();
            scope.branch = row.branch.clone();
            match row.vendor_scan_id {
                Some(id) => {
                    tracing::info!(run_id = left, vendor_scan_id = %id, "taking over a run left unfinished by a process that is gone");
                    opts.resume_vendor_scan_id = Some(id);
                }
                // Nothing to poll: a vendor scan was never started, or the vendor has none
                // (its listing is read as it is now, by a new run: under this old run id a
                // fresh listing would count as older than runs begun since).
                None => {
                    let end = RunEnd::Interrupted(format!(
                        "the process that ran it is gone, and {NO_VENDOR_SCAN}"
                    ));
                    let row = ctx.with_store(move |s| s.finish_run(left, end)).await?;
                    ctx.outbox.wake();
                    return Ok(RunSummary {
                        run_id: left,
                        scan: row.scan,
                        state: row.state,
                        vendor_scan_id: None,
                        counts: row.counts,
                        open_by_severity: BTreeMap::new(),
                        error: row.error,
                    });
                }
            }
            left
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
    // The end of the run logs under its span too; `.instrument`, not a guard held across
    // the awaits below, which would tag other tasks' lines on this thread with this run.
    use tracing::Instrument;
    async move {
    let end = match outcome {
        Ok(Ok(BodyEnd::Complete)) => RunEnd::Succeeded,
        Ok(Ok(BodyEnd::LeftRunning)) | Ok(Err(Stopped::Detached)) => {
            // Left running: on purpose (`start_only`, `detach_at`) or because scansync is
            // stopping while the vendor scan goes on. The lease is let go; a daemon adopts
            // the run and polls the same vendor scan.
            let row = ctx
                .with_store(move |s| {
                    s.detach_run(run_id)?;
                    s.run(run_id)
                })
                .await?;
            let row = row.ok_or_else(|| StoreError::Invalid(format!("run {run_id} vanished")))?;
            if matches!(outcome, Ok(Err(Stopped::Detached))) {
                tracing::info!(
                    vendor_scan_id = row.vendor_scan_id.as_deref().unwrap_or("?"),
                    "stopping while the vendor scan runs: the run is left for the next start or another daemon to finish"
                );
            }
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
            // Try to record the end; the store error itself is what the caller sees. A run
            // that lost its lease ends interrupted (its owner row may be another's now).
            let end = match &e {
                StoreError::LeaseLost(_) => RunEnd::Interrupted(e.to_string()),
                _ => RunEnd::Failed(e.to_string()),
            };
            let _ = ctx.with_store(move |s| s.finish_run(run_id, end)).await;
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
    let (row, mut open_by_severity) = ctx
        .with_store(move |s| {
            let row = s.finish_run(run_id, end)?;
            let open = s.open_by_severity(&store_scan)?;
            Ok((row, open))
        })
        .await?;
    // `min_severity` decides what is reported and counted for thresholds, never what the
    // run saw: the findings below it are stored and tracked, and not counted here.
    if let Some(min) = scan.min_severity {
        open_by_severity.retain(|severity, _| *severity >= min);
    }
    // The run's notifications (if any) were committed with its end.
    ctx.outbox.wake();
    if row.counts.missing > 0 {
        tracing::warn!(
            missing = row.counts.missing,
            "the listing lacked more of the scan's findings than fix_guard allows: they are marked missing, not fixed, until the next complete run confirms"
        );
    }
    tracing::info!(
        new = row.counts.new,
        open = row.counts.open,
        fixed = row.counts.fixed,
        reopened = row.counts.reopened,
        missing = row.counts.missing,
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
    .instrument(span)
    .await
}

/// How a run got its scan: a run of its own, or one left by a process that is gone.
enum Claimed {
    Begun(RunId),
    Adopted(Box<crate::store::RunRow>),
}

/// One try at [`claim_scan`]'s lease.
enum Attempt {
    Claimed(RunId),
    /// Another run holds it: its id (if known) and who runs it.
    Held(Option<RunId>, String),
    /// [`RunOptions::covered_since`]: this run of another process served the due time.
    Served(RunId),
}

/// How often a run waiting for its scan's lease looks again.
const LEASE_POLL: Duration = Duration::from_millis(500);

/// A run's place among the runs allowed at once ([`RunLimits`]): its permits, and the
/// instance they are for.
struct Slot<'a> {
    instance: &'a str,
    permits: Option<RunPermits>,
}

/// Begins the run (or takes the run row begun for it) and holds its scan's lease, waiting
/// while another run holds it, without its run slot (taken again before each new try):
/// says so once through [`RunOptions::on_wait`], returns
/// [`SyncError::Busy`] with [`RunOptions::no_wait`], and [`SyncError::StoppedBeforeStart`]
/// when asked to stop meanwhile.
async fn claim_scan(
    ctx: &SyncContext,
    scope: &RunScope,
    opts: &RunOptions,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    slot: &mut Slot<'_>,
) -> Result<Claimed, SyncError> {
    let mut told = false;
    loop {
        if opts.prefer_adoption {
            // A schedule's run finishes a run of its scan left by a process that is gone
            // (killed, stopped while its vendor scan ran) instead of starting another.
            // Only a run of this scan on the same vendor instance: its vendor scan id means
            // nothing to another one (the config may have moved the scan since).
            let (scan, instance) = (scope.scan.clone(), scope.instance.clone());
            let taken = ctx
                .with_store(move |s| {
                    let left = s
                        .abandoned_runs()?
                        .into_iter()
                        .filter(|r| {
                            r.scan == scan && r.instance == instance && r.vendor_scan_id.is_some()
                        })
                        .map(|r| r.id)
                        .max();
                    match left {
                        Some(id) => s.adopt_run(id),
                        None => Ok(None),
                    }
                })
                .await?;
            if let Some(Ok(row)) = taken {
                return Ok(Claimed::Adopted(Box::new(row)));
            }
        }
        let attempt = {
            let (scope, queued, due) = (scope.clone(), opts.run_id, opts.covered_since);
            ctx.with_store(move |s| {
                let begun = match (queued, due) {
                    (Some(run), _) => {
                        return Ok(match s.claim_queued_run(&scope.scan, run)? {
                            (ScanClaim::Claimed, run) => Attempt::Claimed(run),
                            (
                                ScanClaim::Held {
                                    run_id,
                                    owner_label,
                                    ..
                                },
                                _,
                            ) => Attempt::Held(run_id, owner_label),
                        })
                    }
                    (None, Some(since)) => {
                        let triggers = crate::schedule::SCHEDULED_TRIGGERS;
                        match s.due_run_taken(&scope.scan, since, triggers)? {
                            Some(DueRunTaken::Served(run)) => return Ok(Attempt::Served(run)),
                            Some(DueRunTaken::Held {
                                run_id,
                                owner_label,
                            }) => return Ok(Attempt::Held(run_id, owner_label)),
                            None => s.begin_due_run(&scope, since, triggers),
                        }
                    }
                    (None, None) => s.begin_run(&scope).map(Ok),
                };
                match begun {
                    Ok(Ok(run)) => Ok(Attempt::Claimed(run)),
                    Ok(Err(served)) => Ok(Attempt::Served(served)),
                    Err(StoreError::ScanBusy { run_id, owner, .. }) => {
                        Ok(Attempt::Held(run_id, owner))
                    }
                    Err(e) => Err(e),
                }
            })
            .await?
        };
        let (run_id, owner) = match attempt {
            Attempt::Claimed(run) => return Ok(Claimed::Begun(run)),
            Attempt::Served(run_id) => {
                return Err(SyncError::Covered {
                    scan: scope.scan.clone(),
                    run_id,
                })
            }
            Attempt::Held(run_id, owner) => (run_id, owner),
        };
        let past_deadline = opts
            .wait_until
            .is_some_and(|at| tokio::time::Instant::now() >= at);
        if opts.no_wait || past_deadline {
            return Err(SyncError::Busy {
                scan: scope.scan.clone(),
                run_id,
                owner,
            });
        }
        if !told {
            told = true;
            tracing::info!(scan = %scope.scan, other_run = ?run_id, owner = %owner, "another run of this scan is going; waiting for it");
            if let Some(notice) = &opts.on_wait {
                (notice.0)(&scope.scan, run_id, &owner);
            }
        }
        let poll = match opts.wait_until {
            Some(at) => LEASE_POLL.min(at.saturating_duration_since(tokio::time::Instant::now())),
            None => LEASE_POLL,
        };
        // The wait takes no slot: a run that can start gets it meanwhile. With several
        // daemons on one store the other run is mostly another node's run of the same due
        // time, which then serves this one too (issue #15; BENCHMARKS.md, PostgreSQL).
        slot.permits = None;
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.wait_for(|s| *s) => return Err(SyncError::StoppedBeforeStart(scope.scan.clone())),
        }
        match ctx.limits.acquire(slot.instance, stop).await {
            Some(permits) => slot.permits = Some(permits),
            None => return Err(SyncError::StoppedBeforeStart(scope.scan.clone())),
        }
    }
}

enum BodyEnd {
    Complete,
    /// The vendor scan was started (or waited for) and is still going; the run stays
    /// `running`.
    LeftRunning,
}

/// trigger → poll → pages. The next page is fetched while the previous one commits (the
/// vendor's latency and the JSON work overlap with SQLite's), and each commit is awaited
/// before the page after it is handed over, so a crash or stop loses at most the pages in
/// flight and the run row's counters always match the committed pages.
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
        return Err(if opts.resume_vendor_scan_id.is_some() {
            Stopped::Detached
        } else {
            Stopped::Interrupted
        });
    }

    // An unknown asset must fail the run: a "complete" empty listing would mark every
    // finding of the scan fixed.
    vendor.resolve_target(&scope.bind_to).await?;

    let vendor_scan_id = if vendor.triggers_scans() {
        let id = match &opts.resume_vendor_scan_id {
            Some(id) => {
                tracing::info!(vendor_scan_id = %id, "polling the vendor scan started earlier");
                id.clone()
            }
            None => {
                let req = ScanRequest {
                    bind_to: scope.bind_to.clone(),
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
        .findings(&scope.bind_to, vendor_scan_id.as_deref())
        .await?;
    let mut page_no = 0u64;
    let mut seen = 0u64;
    let mut committing = None;
    loop {
        let next = pages.next_page().await;
        // Whatever the fetch brought (even an error), the commit in flight ends first.
        if let Some(commit) = committing.take() {
            let counts: RunCounts = commit.await?;
            seen += counts.seen;
            tracing::debug!(page = page_no, seen, "page stored");
            progress(&format!("{}: page {page_no}, {seen} findings", scope.scan));
            if *stop.borrow() {
                // The vendor scan's findings can be read again from its start by whoever
                // adopts the run; a passive vendor's listing cannot, so that run ends.
                return Err(if vendor_scan_id.is_some() {
                    Stopped::Detached
                } else {
                    Stopped::Interrupted
                });
            }
        }
        let Some(mut page) = next? else { break };
        page_no += 1;
        // Every connector's findings pass here on their way to the store: vendor text with
        // a NUL is stored the same on SQLite and PostgreSQL (which cannot hold one), rather
        // than failing the page, and so every run of the scan, on PostgreSQL only.
        page.iter_mut().for_each(Finding::replace_nul);
        // Every page is stored whole: `min_severity` filters what is reported, not what the
        // run saw (a filter that dropped findings here would have them marked fixed).
        committing = Some(ctx.start_store(move |s| s.upsert_page(run_id, &page)));
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
            _ = stop.wait_for(|s| *s) => return Err(Stopped::Detached),
            _ = &mut detach => return Ok(Waited::Detached),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DaemonConfig, StoreConfig};
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    use tokio::sync::watch;

    /// Polls `f` once: its output if it is ready without waiting.
    fn now_or_never<F: Future>(f: F) -> Option<F::Output> {
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        }
    }

    /// Permits for `instance` if they are free right now; `None` if the run would wait.
    fn try_acquire(limits: &RunLimits, instance: &str) -> Option<RunPermits> {
        let (_stop, mut rx) = watch::channel(false);
        now_or_never(limits.acquire(instance, &mut rx)).map(|p| p.expect("not stopped"))
    }

    fn config(concurrency: usize, per_instance_concurrency: usize) -> Config {
        Config {
            store: StoreConfig {
                location: crate::config::StoreLocation::Sqlite("/tmp/unused.db".into()),
                retention: Default::default(),
            },
            daemon: DaemonConfig {
                concurrency,
                per_instance_concurrency,
                ..DaemonConfig::default()
            },
            instances: BTreeMap::new(),
            scans: Vec::new(),
            webhooks: BTreeMap::new(),
            server: None,
            suppress: Vec::new(),
        }
    }

    #[test]
    fn the_per_instance_limit_holds_a_run_until_one_on_that_instance_ends() {
        let limits = RunLimits::new(4, 1);
        let first = try_acquire(&limits, "ct").expect("free");
        assert!(try_acquire(&limits, "ct").is_none(), "ct is busy");
        let _other = try_acquire(&limits, "salt").expect("another instance is not held up");
        drop(first);
        assert!(try_acquire(&limits, "ct").is_some());
    }

    #[test]
    fn the_global_limit_holds_a_run_on_another_instance_too() {
        let limits = RunLimits::new(1, 4);
        let first = try_acquire(&limits, "ct").expect("free");
        assert!(try_acquire(&limits, "salt").is_none());
        drop(first);
        assert!(try_acquire(&limits, "salt").is_some());
    }

    #[test]
    fn a_run_waiting_for_a_busy_instance_holds_no_global_slot() {
        let limits = RunLimits::new(2, 1);
        let (_stop, mut rx) = watch::channel(false);
        let first = try_acquire(&limits, "ct").expect("free");
        let mut waiting = std::pin::pin!(limits.acquire("ct", &mut rx));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        // The second global slot is still free for a run against an idle vendor.
        let salt = try_acquire(&limits, "salt").expect("a global slot is free");
        drop(salt);
        drop(first);
        assert!(matches!(
            waiting.as_mut().poll(&mut cx),
            Poll::Ready(Some(_))
        ));
    }

    #[tokio::test]
    async fn stop_ends_a_wait_for_a_permit_with_nothing_acquired() {
        let limits = RunLimits::new(1, 1);
        let (stop, rx) = watch::channel(false);
        let held = try_acquire(&limits, "ct").expect("free");
        let waiter = {
            let (limits, mut rx) = (limits.clone(), rx.clone());
            tokio::spawn(async move { limits.acquire("ct", &mut rx).await.is_some() })
        };
        stop.send(true).unwrap();
        assert!(!waiter.await.unwrap(), "the wait ended without permits");
        drop(held);
        // Stop wins over permits that are free at the same moment.
        let mut rx = rx;
        assert!(limits.acquire("ct", &mut rx).await.is_none());
    }

    #[test]
    fn a_reload_with_other_numbers_gives_new_runs_new_semaphores() {
        let limits = RunLimits::from_config(&config(1, 1));
        let in_flight = try_acquire(&limits, "ct").expect("free");

        let same = limits.reloaded(&config(1, 1));
        assert!(
            try_acquire(&same, "ct").is_none(),
            "unchanged numbers: the run in flight still counts"
        );

        let more = limits.reloaded(&config(3, 2));
        let a = try_acquire(&more, "ct").expect("new semaphores");
        let b = try_acquire(&more, "ct").expect("per instance 2");
        assert!(try_acquire(&more, "ct").is_none(), "per instance 2 holds");
        let c = try_acquire(&more, "salt").expect("global 3");
        assert!(try_acquire(&more, "salt2").is_none(), "global 3 holds");
        drop((a, b, c, in_flight));
    }
}
