//! The long-running loop: jobs, signals, sd_notify.
//!
//! [`run`] is the whole daemon as a library function; `scansync run`, `scansync demo` and
//! the tests all drive it, through a [`DaemonHandle`] (stop, reload, events) that signals
//! feed in production ([`forward_signals`]) and code feeds in-process. There is no second
//! loop.
//!
//! Jobs live on tokio-cron-scheduler, but each one only *fires* into [`Shared::dispatch`],
//! which enforces the rules the scheduler knows nothing about: one run per scan at a time
//! (a webhook push may queue one more behind it), jitter, and stop. The global and
//! per-instance concurrency limits are [`crate::sync::RunLimits`], which every run takes in
//! [`run_scan`], whoever started it. With `[server]`, the listener ([`crate::server`]) is
//! started before the store is opened and handed the daemon once it is ready. Cron
//! schedules are armed one occurrence at a time from
//! [`crate::config::Schedule::next_after`] (time-zone aware), because the scheduler's own
//! cron jobs keep the UTC offset of the moment they were created and so drift by an hour
//! across a DST change.
//!
//! Runs that another process left `running` and then exited (`scansync scan --async` and
//! `--timeout` do so on purpose, a killed daemon by accident) are taken over at start-up,
//! every heartbeat period (`store::heartbeat_every`) and on reload (`Shared::adopt_abandoned`): a new run polls
//! the vendor scan already going.

use crate::config::{Config, ConfigErrors, ScanConfig};
use crate::schedule::{
    jitter_delay, plan_reload, plan_startup, LastRun, StartupPlan, TRIGGER_RESUME, TRIGGER_SCHEDULE,
};
use crate::server::{Backend, Listener, TriggerError, Triggered, TRIGGER_WEBHOOK};
use crate::store::{RunId, RunRow, RunState, StoreError};
use crate::sync::{run_scan, RunOptions, RunSummary, SyncContext, SyncError};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_cron_scheduler::{Job, JobScheduler};
use tracing::{error, info, warn, Instrument};
use uuid::Uuid;

/// What the daemon is asked to do from outside its loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// SIGTERM/SIGINT: stop scheduling, let runs commit their page, exit.
    Stop,
    /// SIGHUP: re-read the config, apply it if valid.
    Reload,
}

/// What the daemon tells whoever listens (the demo's per-cycle report, tests).
#[derive(Debug, Clone)]
pub enum DaemonEvent {
    /// The `[server]` listener is bound to this address (before the store is opened).
    Listening(SocketAddr),
    /// The store is open and every job is scheduled.
    Ready,
    /// A run ended (in any state: succeeded, failed, interrupted, timed out).
    RunFinished(RunSummary),
    /// A run could not even be recorded (the store failed).
    RunError { scan: String, error: String },
    /// A reload was applied (`true`) or rejected and the old config kept (`false`).
    Reloaded(bool),
}

/// Stops, reloads and watches a running daemon. Cheap to clone.
#[derive(Clone)]
pub struct DaemonHandle {
    control: mpsc::UnboundedSender<Control>,
    events: broadcast::Sender<DaemonEvent>,
}

impl DaemonHandle {
    pub fn stop(&self) {
        let _ = self.control.send(Control::Stop);
    }

    pub fn reload(&self) {
        let _ = self.control.send(Control::Reload);
    }

    /// Events from now on. Subscribe before the daemon starts to see `Ready`.
    pub fn subscribe(&self) -> broadcast::Receiver<DaemonEvent> {
        self.events.subscribe()
    }
}

/// The daemon's end of a [`DaemonHandle`], consumed by [`run`].
pub struct DaemonControl {
    control: mpsc::UnboundedReceiver<Control>,
    events: broadcast::Sender<DaemonEvent>,
}

/// A handle and the control end [`run`] takes.
pub fn channel() -> (DaemonHandle, DaemonControl) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(256);
    (
        DaemonHandle {
            control: tx,
            events: events.clone(),
        },
        DaemonControl {
            control: rx,
            events,
        },
    )
}

/// Forwards SIGTERM and SIGINT as [`Control::Stop`] and SIGHUP as [`Control::Reload`],
/// from a thread of its own (signal-hook), so no async runtime signal machinery is needed.
/// Close the returned handle to stop forwarding.
pub fn forward_signals(handle: DaemonHandle) -> std::io::Result<signal_hook::iterator::Handle> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let signals_handle = signals.handle();
    std::thread::Builder::new()
        .name("scansync-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match signal {
                    SIGHUP => {
                        info!("SIGHUP: reloading the config");
                        handle.reload();
                    }
                    _ => {
                        info!(
                            "{}: stopping",
                            if signal == SIGINT {
                                "SIGINT"
                            } else {
                                "SIGTERM"
                            }
                        );
                        handle.stop();
                    }
                }
            }
        })?;
    Ok(signals_handle)
}

/// Tells systemd (when it started us with `Type=notify`) what is going on. A no-op without
/// `NOTIFY_SOCKET`; failures are logged at debug and otherwise ignored, since the daemon's
/// work does not depend on them.
fn sd_notify(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify failed: {e}");
    }
}

fn sd_status(text: &str) {
    sd_notify(&[sd_notify::NotifyState::Status(text)]);
}

/// The config and connectors current runs start with. Replaced whole on reload; runs in
/// flight keep the `Arc`s they started with.
struct Active {
    config: Arc<Config>,
    ctx: Arc<SyncContext>,
}

/// One scan's job on the scheduler. `generation` tells a firing job whether it is still the
/// current one (a reload may have replaced it while it was firing).
struct ScanJob {
    generation: u64,
    id: Uuid,
}

/// What [`Dispatcher::dispatch`] and [`Dispatcher::dispatch_or_queue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dispatched {
    /// Spawned: it runs once its delay passed.
    Started,
    /// Not spawned: a run of that scan is still going (or waiting).
    AlreadyRunning,
    /// Queued behind the run in flight: it starts when that one ends.
    Queued,
    /// Not queued: a run already waits behind the one in flight; this is its tag.
    Joined(RunId),
    /// Not spawned: the daemon is stopping.
    Stopping,
}

type BoxedRun = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A run the dispatcher may start: `run` once its delay passed, or `cancelled` instead when
/// stop comes first (to close a run row already begun).
struct PendingRun {
    delay: Duration,
    span: tracing::Span,
    run: BoxedRun,
    cancelled: Option<BoxedRun>,
}

/// The one run allowed to wait behind a scan's run in flight (webhook pushes), with the
/// tag (run id) later pushes are told.
struct FollowUp {
    tag: RunId,
    job: PendingRun,
}

/// The rules every daemon run start goes through, whatever fired it: one run per scan at a
/// time (at most one more waiting, for webhooks), the jitter delay, and stop. Knows nothing
/// of configs or vendors, so it is tested on its own. The concurrency limits are not here:
/// the runs take them ([`crate::sync::RunLimits`]), so the CLI's runs count too.
struct Dispatcher {
    /// Scans with a run in flight (or waiting for its delay or a permit), each with its
    /// waiting follow-up.
    running: Mutex<HashMap<String, Option<FollowUp>>>,
    /// How many scans have runs in flight; shutdown waits for zero.
    inflight: watch::Sender<usize>,
    stop: watch::Receiver<bool>,
}

/// Counts a scan's task out of `inflight` however it ends, and removes the scan from
/// `running` unless the task already did (a panicking run must not block the scan forever).
struct InflightGuard {
    dispatcher: Arc<Dispatcher>,
    scan: String,
    armed: bool,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if self.armed {
            self.dispatcher
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.scan);
        }
        self.dispatcher
            .inflight
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Resolves when the stop flag is (or becomes) set.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

impl Dispatcher {
    fn new(stop: watch::Receiver<bool>) -> Dispatcher {
        Dispatcher {
            running: Mutex::new(HashMap::new()),
            inflight: watch::channel(0).0,
            stop,
        }
    }

    fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    fn in_flight(&self) -> usize {
        *self.inflight.borrow()
    }

    /// Spawns `run` for `scan` unless a run of it is going; `run` starts after `delay`.
    /// Waiting ends early on stop: nothing was started, so nothing is recorded. Returns at
    /// once.
    fn dispatch<F>(
        self: &Arc<Self>,
        scan: &str,
        delay: Duration,
        span: tracing::Span,
        run: F,
    ) -> Dispatched
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.is_stopping() {
            return Dispatched::Stopping;
        }
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if running.contains_key(scan) {
                return Dispatched::AlreadyRunning;
            }
            running.insert(scan.to_string(), None);
        }
        self.spawn(
            scan,
            PendingRun {
                delay,
                span,
                run: Box::pin(run),
                cancelled: None,
            },
        );
        Dispatched::Started
    }

    /// Like [`Dispatcher::dispatch`] without delay, but a scan with a run in flight gets
    /// `run` queued behind it instead of skipped: at most one run waits per scan, and a
    /// second one is not queued ([`Dispatched::Joined`] names the one waiting). `cancelled`
    /// runs instead of `run` when stop comes before `run` could start.
    fn dispatch_or_queue(
        self: &Arc<Self>,
        scan: &str,
        span: tracing::Span,
        tag: RunId,
        run: BoxedRun,
        cancelled: BoxedRun,
    ) -> Dispatched {
        if self.is_stopping() {
            return Dispatched::Stopping;
        }
        let job = PendingRun {
            delay: Duration::ZERO,
            span,
            run,
            cancelled: Some(cancelled),
        };
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            match running.get_mut(scan) {
                Some(Some(waiting)) => return Dispatched::Joined(waiting.tag),
                Some(slot @ None) => {
                    *slot = Some(FollowUp { tag, job });
                    return Dispatched::Queued;
                }
                None => {
                    running.insert(scan.to_string(), None);
                }
            }
        }
        self.spawn(scan, job);
        Dispatched::Started
    }

    /// The task of one scan: its job, then each follow-up queued meanwhile, then the scan
    /// leaves `running` (in the same lock as the last look for a follow-up, so a push that
    /// comes just then either is queued and run here, or finds the scan free).
    fn spawn(self: &Arc<Self>, scan: &str, first: PendingRun) {
        self.inflight.send_modify(|n| *n += 1);
        let mut guard = InflightGuard {
            dispatcher: self.clone(),
            scan: scan.to_string(),
            armed: true,
        };
        let dispatcher = self.clone();
        let scan = scan.to_string();
        tokio::spawn(async move {
            let mut job = first;
            loop {
                dispatcher.run_job(job).await;
                let mut running = dispatcher.running.lock().unwrap_or_else(|e| e.into_inner());
                match running.get_mut(&scan).and_then(Option::take) {
                    Some(next) => job = next.job,
                    None => {
                        running.remove(&scan);
                        guard.armed = false;
                        break;
                    }
                }
            }
            drop(guard);
        });
    }

    /// Waits for the delay, then runs the job; on stop, its `cancelled` instead. Stop while
    /// the job waits for its permits is the job's own to handle ([`run_scan`] does).
    async fn run_job(&self, job: PendingRun) {
        let PendingRun {
            delay,
            span,
            run,
            cancelled,
        } = job;
        let stop = self.stop.clone();
        async move {
            let go = tokio::select! {
                // Stop wins over a delay that ends at the same moment.
                biased;
                _ = stopped(stop) => false,
                _ = tokio::time::sleep(delay) => true,
            };
            match (go, cancelled) {
                (true, _) => run.await,
                (false, Some(cancelled)) => cancelled.await,
                (false, None) => {}
            }
        }
        .instrument(span)
        .await
    }

    /// Waits up to `timeout` for every run in flight to end. True when they all did.
    async fn drain(&self, timeout: Duration) -> bool {
        let mut rx = self.inflight.subscribe();
        let drained = tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0)).await;
        drained.is_ok()
    }
}

struct Shared {
    config_path: PathBuf,
    active: RwLock<Active>,
    dispatcher: Arc<Dispatcher>,
    events: broadcast::Sender<DaemonEvent>,
    scheduler: JobScheduler,
    jobs: Mutex<HashMap<String, ScanJob>>,
    next_generation: AtomicU64,
    /// True from the moment every job is scheduled until stop (what `/readyz` reports).
    scheduling: AtomicBool,
}

impl Shared {
    fn current(&self) -> (Arc<Config>, Arc<SyncContext>) {
        let a = self.active.read().unwrap_or_else(|e| e.into_inner());
        (a.config.clone(), a.ctx.clone())
    }

    fn is_stopping(&self) -> bool {
        self.dispatcher.is_stopping()
    }

    /// Starts a run of `scan_name` (as the current config has it) unless one is already
    /// going; returns at once. `due` is the instant the run serves: a run of another daemon
    /// on the same store that started at or after it and succeeded serves it too (see
    /// [`RunOptions::covered_since`]).
    fn dispatch(
        self: &Arc<Self>,
        scan_name: &str,
        trigger: &str,
        jitter: bool,
        due: DateTime<Utc>,
    ) {
        let (config, ctx) = self.current();
        let Some(scan) = config
            .scans
            .iter()
            .find(|s| s.name == scan_name && s.enabled)
            .cloned()
        else {
            info!(
                scan = scan_name,
                "not run: the scan is no longer in the config or is disabled"
            );
            return;
        };
        let delay = if jitter {
            jitter_delay(config.daemon.jitter)
        } else {
            Duration::ZERO
        };
        let opts = RunOptions {
            trigger: trigger.to_string(),
            prefer_adoption: true,
            covered_since: Some(due),
            ..RunOptions::default()
        };
        let span = tracing::info_span!(
            "run",
            scan = %scan.name,
            run_id = tracing::field::Empty,
            trigger = %trigger
        );
        let shared = self.clone();
        let name = scan.name.clone();
        let run = async move { shared.run_one(&ctx, &scan, opts).await };
        match self.dispatcher.dispatch(&name, delay, span, run) {
            Dispatched::Started
            | Dispatched::Stopping
            | Dispatched::Queued
            | Dispatched::Joined(_) => {}
            Dispatched::AlreadyRunning => info!(
                scan = %name,
                trigger,
                "skipped: the previous run of this scan is still going"
            ),
        }
    }

    /// A webhook push: a run of `scan_name` on `branch` now, or queued behind the run in
    /// flight of that scan and branch. The run row is begun here, before the run waits, so
    /// the sender is told its id; a row that turns out not to be needed (a run already
    /// waits, or the daemon is stopping) is deleted again.
    async fn trigger_webhook(
        self: &Arc<Self>,
        scan_name: &str,
        branch: &str,
    ) -> Result<Triggered, TriggerError> {
        if self.is_stopping() {
            return Err(TriggerError::Stopping);
        }
        let (config, ctx) = self.current();
        let scan = config
            .scans
            .iter()
            .find(|s| s.name == scan_name && s.enabled)
            .cloned()
            .ok_or_else(|| {
                TriggerError::Failed(format!(
                    "scan \"{scan_name}\" is no longer in the config or is disabled"
                ))
            })?;
        let opts = RunOptions {
            trigger: TRIGGER_WEBHOOK.to_string(),
            branch: Some(branch.to_string()),
            ..RunOptions::default()
        };
        let key = crate::sync::store_scan_name(&scan, &opts);
        let run_id = crate::sync::begin_run(&ctx, &scan, &opts)
            .await
            .map_err(|e| TriggerError::Failed(e.to_string()))?;
        let opts = RunOptions {
            run_id: Some(run_id),
            ..opts
        };
        let span = tracing::info_span!("run", scan = %key, run_id, trigger = TRIGGER_WEBHOOK);
        let run = {
            let (shared, ctx, scan) = (self.clone(), ctx.clone(), scan.clone());
            async move { shared.run_one(&ctx, &scan, opts).await }
        };
        // Queued and never started: closed as a run stopped while waiting for a permit is.
        let cancelled = {
            let ctx = ctx.clone();
            async move {
                if let Err(e) = crate::sync::end_unstarted_run(&ctx, run_id).await {
                    warn!("cannot close run {run_id}: {e}");
                }
            }
        };
        let dispatched = self.dispatcher.dispatch_or_queue(
            &key,
            span,
            run_id,
            Box::pin(run),
            Box::pin(cancelled),
        );
        let discard = |why: &'static str| {
            let ctx = ctx.clone();
            async move {
                match ctx
                    .with_store(move |s| s.discard_unstarted_run(run_id))
                    .await
                {
                    Ok(_) => {}
                    Err(e) => warn!("cannot remove run {run_id} ({why}): {e}"),
                }
            }
        };
        match dispatched {
            Dispatched::Started => Ok(Triggered {
                run_id,
                queued: false,
            }),
            Dispatched::Queued => {
                info!(scan = %key, run_id, "a run of this scan is going; this one waits for it");
                Ok(Triggered {
                    run_id,
                    queued: true,
                })
            }
            Dispatched::Joined(waiting) => {
                discard("a run already waits").await;
                info!(scan = %key, run_id = waiting, "a run of this scan already waits; the push joins it");
                Ok(Triggered {
                    run_id: waiting,
                    queued: true,
                })
            }
            Dispatched::Stopping | Dispatched::AlreadyRunning => {
                discard("stopping").await;
                Err(TriggerError::Stopping)
            }
        }
    }

    /// Takes over the runs that processes which are gone left `running`: `scansync scan
    /// --async` and `--timeout` leave theirs on purpose, a killed daemon by accident. A run
    /// with a vendor scan id, of a scan the config has (or the ad hoc scan `scan` made up),
    /// is finished by a new run that polls that vendor scan, started no second time; the
    /// others are marked interrupted. Runs of live processes (pid and start time) are not
    /// touched, and a run of a scan that is busy here waits for the next sweep. Called at
    /// start-up, every [`crate::store::heartbeat_every`] and on reload; returns how many runs were taken over.
    async fn adopt_abandoned(self: &Arc<Self>) -> Result<usize, StoreError> {
        let (config, ctx) = self.current();
        let abandoned = ctx.with_store(|s| s.abandoned_runs()).await?;
        let mut adopted = 0;
        for row in abandoned {
            // A run without a vendor scan (it died before starting one, or its vendor has
            // none) has nothing to poll: it ends here and now, so the schedule that follows
            // (a `now` scan at start-up) runs the scan, as a new run reading the listing of
            // now, instead of being skipped behind a run that would only end the row.
            let resumable = scan_for_abandoned(&config, &row).and_then(|scan| {
                if row.vendor_scan_id.is_none() {
                    Err(crate::sync::NO_VENDOR_SCAN.to_string())
                } else {
                    Ok(scan)
                }
            });
            match resumable {
                Ok(scan) => adopted += usize::from(self.dispatch_adoption(&ctx, scan, &row)),
                Err(why) => {
                    let id = row.id;
                    let reason = format!("interrupted: the process that ran it is gone, and it cannot be resumed here: {why}");
                    if let Some(row) = ctx
                        .with_store(move |s| s.end_abandoned_run(id, &reason))
                        .await?
                    {
                        info!(
                            scan = %row.scan,
                            run_id = row.id,
                            "run left unfinished by a process that is gone: marked interrupted, not resumed: {why}"
                        );
                    }
                }
            }
        }
        Ok(adopted)
    }

    /// Starts the run that takes `row` over, unless a run of that scan (and branch) is going
    /// here: then the row stays as it is for the next sweep. True when started.
    fn dispatch_adoption(
        self: &Arc<Self>,
        ctx: &Arc<SyncContext>,
        scan: ScanConfig,
        row: &RunRow,
    ) -> bool {
        let opts = RunOptions {
            trigger: TRIGGER_RESUME.to_string(),
            branch: row.branch.clone(),
            adopt_run: Some(row.id),
            ..RunOptions::default()
        };
        let key = crate::sync::store_scan_name(&scan, &opts);
        let span = tracing::info_span!(
            "run",
            scan = %key,
            run_id = tracing::field::Empty,
            trigger = TRIGGER_RESUME
        );
        let run = {
            let (shared, ctx) = (self.clone(), ctx.clone());
            async move { shared.run_one(&ctx, &scan, opts).await }
        };
        match self.dispatcher.dispatch(&key, Duration::ZERO, span, run) {
            Dispatched::Started => {
                info!(
                    scan = %key,
                    run_id = row.id,
                    "run left unfinished by a process that is gone; resuming its vendor scan {}",
                    row.vendor_scan_id.as_deref().unwrap_or("?")
                );
                true
            }
            Dispatched::AlreadyRunning => {
                tracing::debug!(
                    scan = %key,
                    run_id = row.id,
                    "run left unfinished by a process that is gone; taken over once the run of this scan in flight ends"
                );
                false
            }
            Dispatched::Stopping | Dispatched::Queued | Dispatched::Joined(_) => false,
        }
    }

    async fn run_one(&self, ctx: &SyncContext, scan: &ScanConfig, opts: RunOptions) {
        info!(adopt_run = ?opts.adopt_run, "run starting");
        sd_status(&format!("running scan {}", scan.name));
        match run_scan(ctx, scan, opts).await {
            Ok(summary) => {
                tracing::Span::current().record("run_id", summary.run_id);
                let c = summary.counts;
                let line = format!(
                    "run {} of {} ended {:?}: {} seen, {} new, {} fixed, {} reopened",
                    summary.run_id, scan.name, summary.state, c.seen, c.new, c.fixed, c.reopened
                );
                match (&summary.state, &summary.error) {
                    (RunState::Succeeded, _) => info!(run_id = summary.run_id, "{line}"),
                    (_, Some(e)) => warn!(run_id = summary.run_id, "{line}: {e}"),
                    (_, None) => warn!(run_id = summary.run_id, "{line}"),
                }
                sd_status(&line);
                let _ = self.events.send(DaemonEvent::RunFinished(summary));
            }
            Err(SyncError::StoppedBeforeStart(_)) => {
                info!("not started: scansync is stopping");
            }
            Err(e @ SyncError::NotAbandoned(_)) => info!("not taken over: {e}"),
            Err(e @ SyncError::Covered { .. }) => info!("skipped: {e}"),
            Err(e) => {
                error!("run could not be recorded: {e}");
                let _ = self.events.send(DaemonEvent::RunError {
                    scan: scan.name.clone(),
                    error: e.to_string(),
                });
            }
        }
    }

    /// The scheduling half of start-up and reload for one enabled scan.
    async fn schedule_scan(self: &Arc<Self>, scan: &ScanConfig) -> anyhow::Result<()> {
        let last = {
            let (_, ctx) = self.current();
            let store = ctx.store.lock().unwrap_or_else(|e| e.into_inner());
            store.last_run(&scan.name)?
        };
        let plan = plan_startup(&scan.schedule, Utc::now(), last.as_ref().and_then(last_run));
        match plan {
            StartupPlan::RunNow { trigger, missed } => {
                if let Some(at) = missed {
                    info!(
                        scan = %scan.name,
                        "scheduled instant {} passed while scansync was not running and the scan never ran at it; running it now",
                        at.to_rfc3339()
                    );
                }
                // `at`: that instant. `now`: the run found at planning (any not successful),
                // so a run another daemon began then or later, once succeeded, is enough.
                let due = missed
                    .or(last.as_ref().and_then(last_run).map(|l| l.started_at))
                    .unwrap_or(DateTime::UNIX_EPOCH);
                self.dispatch(&scan.name, trigger, false, due);
            }
            StartupPlan::Skip(reason) => info!(scan = %scan.name, "not run at start-up: {reason}"),
            StartupPlan::OnceAt(at) => {
                let generation = self.new_generation();
                let shared = self.clone();
                let name = scan.name.clone();
                let job = Job::new_one_shot_at_instant_async(instant_for(at), move |_, _| {
                    let shared = shared.clone();
                    let name = name.clone();
                    Box::pin(async move {
                        wait_until(at).await;
                        if shared.take_job_if_current(&name, generation) {
                            shared.dispatch(&name, "at", false, at);
                        }
                    })
                })?;
                self.add_job(&scan.name, generation, job, false).await?;
                info!(scan = %scan.name, "scheduled once at {}", at.to_rfc3339());
            }
            StartupPlan::Every { every, run_now } => {
                if run_now {
                    info!(scan = %scan.name, "never ran, or its last run started an interval or more ago: running it now");
                    self.dispatch(&scan.name, TRIGGER_SCHEDULE, false, every_due(every));
                }
                // The scheduler counts whole seconds; below one it would spin.
                let every = every.max(Duration::from_secs(1));
                let generation = self.new_generation();
                let shared = self.clone();
                let name = scan.name.clone();
                let job = Job::new_repeated_async(every, move |_, _| {
                    let shared = shared.clone();
                    let name = name.clone();
                    Box::pin(async move {
                        if shared.job_is_current(&name, generation) {
                            shared.dispatch(&name, TRIGGER_SCHEDULE, true, every_due(every));
                        }
                    })
                })?;
                self.add_job(&scan.name, generation, job, false).await?;
                info!(scan = %scan.name, "scheduled every {}s", every.as_secs());
            }
            StartupPlan::Cron => {
                let generation = self.new_generation();
                self.arm_cron(scan.name.clone(), generation, Utc::now(), false)
                    .await?;
            }
        }
        Ok(())
    }

    /// Arms the next cron occurrence strictly after `after` as a one-shot job; when it
    /// fires it runs the scan and arms the following one. Counting from the occurrence that
    /// fired (not the clock) keeps a job the scheduler fires a little early from firing twice.
    fn arm_cron(
        self: &Arc<Self>,
        scan_name: String,
        generation: u64,
        after: DateTime<Utc>,
        continuing: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + '_>> {
        Box::pin(async move {
            let (config, _) = self.current();
            let Some(scan) = config.scans.iter().find(|s| s.name == scan_name) else {
                return Ok(());
            };
            let from = after.max(Utc::now());
            // "Strictly after": an occurrence equal to the one that just fired is not next.
            let next = scan.schedule.next_after(from).and_then(|n| {
                if n > after {
                    Some(n)
                } else {
                    scan.schedule
                        .next_after(after + chrono::Duration::seconds(1))
                }
            });
            let Some(next) = next else {
                warn!(scan = %scan_name, "the cron schedule has no future occurrence; nothing scheduled");
                return Ok(());
            };
            let shared = self.clone();
            let name = scan_name.clone();
            let job = Job::new_one_shot_at_instant_async(instant_for(next), move |_, _| {
                let shared = shared.clone();
                let name = name.clone();
                Box::pin(async move {
                    wait_until(next).await;
                    if !shared.job_is_current(&name, generation) {
                        return;
                    }
                    shared.dispatch(&name, TRIGGER_SCHEDULE, true, next);
                    if let Err(e) = shared.arm_cron(name.clone(), generation, next, true).await {
                        error!(scan = %name, "cannot schedule the next cron run: {e:#}");
                    }
                })
            })?;
            if self
                .add_job(&scan_name, generation, job, continuing)
                .await?
            {
                info!(scan = %scan_name, "next run at {}", next.to_rfc3339());
            }
            Ok(())
        })
    }

    fn new_generation(&self) -> u64 {
        self.next_generation.fetch_add(1, Ordering::Relaxed)
    }

    fn job_is_current(&self, scan: &str, generation: u64) -> bool {
        !self.is_stopping()
            && self
                .jobs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(scan)
                .is_some_and(|j| j.generation == generation)
    }

    /// For one-shot jobs: true (and forgets the job) when it is still the scan's job.
    fn take_job_if_current(&self, scan: &str, generation: u64) -> bool {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.get(scan).is_some_and(|j| j.generation == generation) && !self.is_stopping() {
            jobs.remove(scan);
            true
        } else {
            false
        }
    }

    /// Adds `job` as the scan's job of `generation`. Returns false (and drops the job) when
    /// it is stale: a reload moved the scan to a newer generation or removed it while a cron
    /// chain (`continuing`) was arming its next occurrence.
    async fn add_job(
        &self,
        scan: &str,
        generation: u64,
        job: Job,
        continuing: bool,
    ) -> anyhow::Result<bool> {
        let id = self.scheduler.add(job).await?;
        let (keep, previous) = {
            let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            let keep = match jobs.get(scan).map(|j| j.generation) {
                Some(current) => current == generation || (!continuing && current < generation),
                None => !continuing,
            };
            let previous = if keep {
                jobs.insert(scan.to_string(), ScanJob { generation, id })
                    .map(|old| old.id)
            } else {
                None
            };
            (keep, previous)
        };
        if !keep {
            let _ = self.scheduler.remove(&id).await;
            return Ok(false);
        }
        if let Some(old) = previous.filter(|old| *old != id) {
            // A cron chain's previous (already fired) one-shot.
            let _ = self.scheduler.remove(&old).await;
        }
        Ok(true)
    }

    async fn unschedule(&self, scan: &str) {
        let job = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(scan);
        if let Some(job) = job {
            if let Err(e) = self.scheduler.remove(&job.id).await {
                warn!(scan, "removing the old job failed: {e}");
            }
        }
    }

    /// SIGHUP: the new config if it is valid, the old one (and every error logged) if not.
    async fn reload(self: &Arc<Self>) {
        sd_notify(&reloading_states());
        sd_status("reloading the config");
        let applied = match self.try_reload().await {
            Ok(summary) => {
                info!("config reloaded: {summary}");
                true
            }
            Err(ReloadError::Invalid(errors)) => {
                for e in &errors.errors {
                    error!("config reload rejected: {e}");
                }
                warn!(
                    "keeping the previous config ({} error(s) in {})",
                    errors.errors.len(),
                    self.config_path.display()
                );
                false
            }
            Err(ReloadError::Other(e)) => {
                error!("config reload failed, keeping the previous config: {e:#}");
                false
            }
        };
        // SIGHUP also picks up runs left by `scan --async` now, not at the next sweep.
        match self.adopt_abandoned().await {
            Ok(0) => {}
            Ok(n) => info!("{n} run(s) left unfinished by other processes taken over"),
            Err(e) => warn!("cannot look for runs left unfinished by other processes: {e}"),
        }
        let _ = self.events.send(DaemonEvent::Reloaded(applied));
        sd_notify(&[sd_notify::NotifyState::Ready]);
        sd_status(&self.status_line());
    }

    async fn try_reload(self: &Arc<Self>) -> Result<String, ReloadError> {
        let new = Config::load(&self.config_path, crate::vendors::REGISTRY)
            .map_err(ReloadError::Invalid)?;
        let (old, old_ctx) = self.current();
        if new.server != old.server {
            warn!("[server] changed; the listener keeps its address, TLS files and metrics token until scansync restarts (webhook settings of scans apply now)");
        }
        if new.store.path != old.store.path {
            return Err(ReloadError::Other(anyhow::anyhow!(
                "store.path changed from {} to {}; moving the store needs a restart (systemctl restart scansync)",
                old.store.path.display(),
                new.store.path.display()
            )));
        }
        // One writer connection per process: the new context keeps the store the runs in
        // flight use, with new connectors and limits.
        let ctx = old_ctx.with_config(&new).map_err(ReloadError::Other)?;
        let plan = plan_reload(&old.scans, &new.scans);
        let new = Arc::new(new);
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = Active {
            config: new.clone(),
            ctx: Arc::new(ctx),
        };
        for name in plan.removed.iter().chain(&plan.rescheduled) {
            self.unschedule(name).await;
        }
        for name in plan.added.iter().chain(&plan.rescheduled) {
            if let Some(scan) = new.scans.iter().find(|s| &s.name == name) {
                if let Err(e) = self.schedule_scan(scan).await {
                    error!(scan = %name, "cannot schedule: {e:#}");
                }
            }
        }
        Ok(format!(
            "{} added, {} removed, {} rescheduled, {} unchanged",
            plan.added.len(),
            plan.removed.len(),
            plan.rescheduled.len(),
            plan.kept.len()
        ))
    }

    fn status_line(&self) -> String {
        let (config, _) = self.current();
        let enabled = config.scans.iter().filter(|s| s.enabled).count();
        format!(
            "{enabled} scan(s) scheduled, {} run(s) in flight",
            self.dispatcher.in_flight()
        )
    }
}

/// The daemon as the listener sees it.
struct DaemonBackend(Arc<Shared>);

#[async_trait::async_trait]
impl Backend for DaemonBackend {
    fn current(&self) -> (Arc<Config>, Arc<SyncContext>) {
        self.0.current()
    }

    fn scheduler_running(&self) -> bool {
        self.0.scheduling.load(Ordering::SeqCst) && !self.0.is_stopping()
    }

    async fn trigger(&self, scan: &ScanConfig, branch: &str) -> Result<Triggered, TriggerError> {
        self.0.trigger_webhook(&scan.name, branch).await
    }
}

enum ReloadError {
    Invalid(ConfigErrors),
    Other(anyhow::Error),
}

fn reloading_states() -> Vec<sd_notify::NotifyState<'static>> {
    let mut states = vec![sd_notify::NotifyState::Reloading];
    if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    states
}

/// The due time an `every` run serves: half an interval back, so a run of another daemon
/// on the store (whose ticks fall elsewhere in the interval) within the last half interval
/// serves it, while this daemon's own previous run (an interval back) never does.
fn every_due(every: Duration) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::from_std(every / 2).unwrap_or(chrono::Duration::zero())
}

fn last_run(row: &RunRow) -> Option<LastRun> {
    let started_at = DateTime::parse_from_rfc3339(&row.started_at)
        .ok()?
        .with_timezone(&Utc);
    Some(LastRun {
        state: row.state,
        started_at,
    })
}

/// When the daemon first prunes after start, and how often after that.
const PRUNE_FIRST: Duration = Duration::from_secs(5 * 60);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes what `[store] retention` lets go, one small step per hold of the store, so runs
/// committing pages meanwhile wait for one step at most.
async fn prune(ctx: Arc<SyncContext>, retention: crate::config::Retention) {
    let mut total = crate::store::PruneReport::default();
    loop {
        match ctx.with_store(move |s| s.prune_step(&retention)).await {
            Ok(step) if step.is_empty() => break,
            Ok(step) => total.add(step),
            Err(e) => {
                warn!("pruning the store failed: {e}; trying again in an hour");
                return;
            }
        }
    }
    if !total.is_empty() {
        info!(
            runs = total.runs,
            events = total.events,
            notifications = total.notifications,
            webhook_deliveries = total.webhook_deliveries,
            branch_scopes = total.branch_scopes,
            branch_findings = total.branch_findings,
            "pruned what [store] retention lets go"
        );
    }
}

/// The scheduler wants an `Instant`; schedules speak wall-clock time.
fn instant_for(at: DateTime<Utc>) -> Instant {
    let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    Instant::now() + wait
}

/// The scheduler fires one-shot jobs at whole-second resolution, possibly just before the
/// instant; a scheduled run never starts early.
async fn wait_until(at: DateTime<Utc>) {
    if let Ok(wait) = (at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
}

/// Runs the daemon until [`Control::Stop`] (or until every [`DaemonHandle`] is dropped).
///
/// A config that does not validate is returned as [`ConfigErrors`] (the CLI maps it to exit
/// 78). On stop, runs in flight get `[daemon] shutdown_timeout` to commit their current page
/// and end as interrupted; a run still going after that is left for the next start to mark
/// interrupted and resume.
pub async fn run(config_path: &Path, control: DaemonControl) -> anyhow::Result<()> {
    let DaemonControl {
        control: mut control_rx,
        events,
    } = control;
    sd_status("loading the config");
    let config = Config::load(config_path, crate::vendors::REGISTRY)?;
    // Before the store: `/healthz` answers at once and `/readyz` says 503 until ready.
    let listener = match &config.server {
        Some(server) => {
            let listener = Listener::start(server).await?;
            let _ = events.send(DaemonEvent::Listening(listener.local_addr()));
            Some(listener)
        }
        None => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    sd_status("opening the store");
    let Some(ctx) = open_store(&config, stop_rx.clone(), &mut control_rx).await? else {
        info!("stopped before the store was open");
        if let Some(listener) = listener {
            listener.shutdown().await;
        }
        return Ok(());
    };
    // Delivers the webhook outbox (rows left by a previous process first) until stop.
    let delivery = tokio::spawn(crate::webhooks::run_delivery_task(
        ctx.delivery(),
        stop_rx.clone(),
    ));
    let scheduler = JobScheduler::new().await?;
    scheduler.start().await?;
    let shared = Arc::new(Shared {
        config_path: config_path.to_path_buf(),
        dispatcher: Arc::new(Dispatcher::new(stop_rx)),
        active: RwLock::new(Active {
            config: Arc::new(config.clone()),
            ctx: Arc::new(ctx),
        }),
        events: events.clone(),
        scheduler,
        jobs: Mutex::new(HashMap::new()),
        next_generation: AtomicU64::new(1),
        scheduling: AtomicBool::new(false),
    });

    // Resume first, so a `now` scan whose run was cut short is polled, not started again
    // (the dispatcher skips a second run of a scan already going).
    let resumed = shared.adopt_abandoned().await?;
    for scan in config.scans.iter().filter(|s| s.enabled) {
        if let Err(e) = shared.schedule_scan(scan).await {
            error!(scan = %scan.name, "cannot schedule: {e:#}");
        }
    }
    let enabled = config.scans.iter().filter(|s| s.enabled).count();
    info!(
        "scansync running: {enabled} scan(s) scheduled, {resumed} run(s) resumed, store {}",
        config.store.path.display()
    );
    shared.scheduling.store(true, Ordering::SeqCst);
    if let Some(listener) = &listener {
        listener.set_backend(Arc::new(DaemonBackend(shared.clone())));
    }
    sd_notify(&[sd_notify::NotifyState::Ready]);
    sd_status(&shared.status_line());
    let _ = events.send(DaemonEvent::Ready);

    // The watchdog pings while the store answers: a store that took no heartbeat for a
    // lease's lifetime (a dead disk, a lock held forever) stops the pings, and systemd
    // restarts the service instead of leaving it up and useless.
    let beat = shared.current().1.store_beat.clone();
    let watchdog = sd_notify::watchdog_enabled().map(|period| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period / 2);
            let mut told = false;
            loop {
                tick.tick().await;
                if beat.fresh(crate::store::lease_ttl()) {
                    told = false;
                    sd_notify(&[sd_notify::NotifyState::Watchdog]);
                } else if !told {
                    told = true;
                    error!("the store has not answered for {}s: no more watchdog pings, so systemd restarts scansync", crate::store::lease_ttl().as_secs());
                }
            }
        })
    });

    // The first sweep was at start-up; an idle daemon wakes once per period for it.
    let adopt_every = crate::store::heartbeat_every();
    let mut adopt_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + adopt_every, adopt_every);
    adopt_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Retention: a few minutes after start (not in the way of start-up runs), then hourly.
    let mut prune_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + PRUNE_FIRST, PRUNE_EVERY);
    prune_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruning: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            c = control_rx.recv() => match c {
                Some(Control::Reload) => shared.reload().await,
                Some(Control::Stop) | None => break,
            },
            _ = adopt_tick.tick() => {
                if let Err(e) = shared.adopt_abandoned().await {
                    warn!("cannot look for runs left unfinished by other processes: {e}");
                }
            }
            _ = prune_tick.tick() => {
                if pruning.as_ref().is_none_or(|p| p.is_finished()) {
                    let (config, ctx) = shared.current();
                    pruning = Some(tokio::spawn(prune(ctx, config.store.retention)));
                }
            }
        }
    }
    if let Some(p) = pruning {
        p.abort();
    }

    shared.scheduling.store(false, Ordering::SeqCst);
    let drained = shut_down(&shared, &stop_tx, &mut control_rx).await;
    if let Some(w) = watchdog {
        w.abort();
    }
    stop_delivery(delivery).await;
    // After the drain, so `/readyz` says 503 (not a refused connection) while runs commit.
    if let Some(listener) = listener {
        listener.shutdown().await;
    }
    // Goodbye to the store: runs left waiting on a vendor scan are adopted by the next start
    // (or another daemon) at once rather than after the heartbeat expires.
    shared.current().1.release().await;
    if drained {
        info!("stopped");
    } else {
        warn!(
            "{} run(s) still going after shutdown_timeout; they are marked interrupted at the next start",
            shared.dispatcher.in_flight()
        );
    }
    Ok(())
}

/// Lets the webhook delivery task finish the attempt it is making (the stop flag is already
/// set) for a few seconds, then cuts it off. A row cut off mid-attempt stays in the outbox,
/// claimed until its lease runs out, and is sent again after the next start.
async fn stop_delivery(mut delivery: tokio::task::JoinHandle<()>) {
    const GRACE: Duration = Duration::from_secs(5);
    if tokio::time::timeout(GRACE, &mut delivery).await.is_err() {
        warn!("webhook delivery still busy after {}s; the notification in flight is sent again after the next start", GRACE.as_secs());
        delivery.abort();
    }
}

/// How often opening a store that another process holds locked is tried again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Opens the store and builds the connectors, off the async workers (opening may wait on
/// SQLite's busy timeout). A store locked by another process (a backup, another scansync
/// migrating it) is waited for, logged, while the listener answers `/readyz` with 503;
/// any other failure ends the start. `None` when asked to stop while waiting.
async fn open_store(
    config: &Config,
    stop: watch::Receiver<bool>,
    control_rx: &mut mpsc::UnboundedReceiver<Control>,
) -> anyhow::Result<Option<SyncContext>> {
    let config = Arc::new(config.clone());
    let mut logged = false;
    loop {
        let (c, s) = (config.clone(), stop.clone());
        let opened = tokio::task::spawn_blocking(move || SyncContext::new(&c, s)).await?;
        match opened {
            Ok(ctx) => return Ok(Some(ctx)),
            Err(e)
                if e.downcast_ref::<StoreError>()
                    .is_some_and(StoreError::is_busy) =>
            {
                if !logged {
                    warn!(
                        "the store {} is locked by another process; waiting for it (retrying every {}s): {e}",
                        config.store.path.display(),
                        STORE_RETRY.as_secs()
                    );
                    sd_status("waiting for the store: locked by another process");
                    logged = true;
                }
            }
            Err(e) => return Err(e),
        }
        let deadline = tokio::time::sleep(STORE_RETRY);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                c = control_rx.recv() => match c {
                    Some(Control::Stop) | None => return Ok(None),
                    Some(Control::Reload) => info!("reload ignored while waiting for the store; send it again once scansync is ready"),
                },
            }
        }
    }
}

/// The scan a run left `running` by a process that is gone belongs to: the configured scan
/// of that name (`name@branch` for another branch) on that instance, enabled or not (the
/// vendor scan is already running; only its result is read), else the ad hoc
/// `<vendor>-<project>` scan `scansync scan` makes up when the config has none. `Err` says
/// why the run cannot be resumed.
fn scan_for_abandoned(config: &Config, row: &RunRow) -> Result<ScanConfig, String> {
    let vendor_matches = config
        .instances
        .get(&row.instance)
        .is_some_and(|i| i.vendor == row.vendor);
    if !vendor_matches {
        return Err(format!(
            "the config has no {} instance \"{}\"",
            row.vendor, row.instance
        ));
    }
    let opts = RunOptions {
        branch: row.branch.clone(),
        ..RunOptions::default()
    };
    let same = |scan: &ScanConfig| {
        scan.instance == row.instance && crate::sync::store_scan_name(scan, &opts) == row.scan
    };
    // The binding stored with the run, not today's config: the run reads what it started
    // (the vendor scan of that project), under the name it was stored as. The config's scan
    // of that name lends the rest (timeout, notifications).
    let mut scan = config
        .scans
        .iter()
        .find(|s| same(s))
        .cloned()
        .unwrap_or_else(|| ScanConfig::ad_hoc(&row.vendor, &row.instance, &row.bind_to));
    scan.bind_to = row.bind_to.clone();
    if !same(&scan) {
        // A scan renamed or rebranched since: keep the stored name.
        scan.name = row.scan.clone();
        scan.branch = row.branch.clone();
    }
    Ok(scan)
}

/// Stops scheduling, flips the stop flag (runs commit their page and end interrupted) and
/// waits up to `shutdown_timeout` for them. True when every run ended in time.
async fn shut_down(
    shared: &Arc<Shared>,
    stop_tx: &watch::Sender<bool>,
    control_rx: &mut mpsc::UnboundedReceiver<Control>,
) -> bool {
    sd_notify(&[sd_notify::NotifyState::Stopping]);
    let (config, _) = shared.current();
    let in_flight = shared.dispatcher.in_flight();
    sd_status(&format!(
        "stopping: waiting for {in_flight} run(s) to commit their current page"
    ));
    info!(
        "stopping: {in_flight} run(s) in flight get up to {}s to commit their current page",
        config.daemon.shutdown_timeout.as_secs()
    );
    let _ = stop_tx.send(true);
    // Jobs hold the shared state; removing them lets it go when `run` returns.
    let jobs: Vec<Uuid> = shared
        .jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .map(|(_, j)| j.id)
        .collect();
    for id in jobs {
        let _ = shared.scheduler.remove(&id).await;
    }
    let mut scheduler = shared.scheduler.clone();
    if let Err(e) = scheduler.shutdown().await {
        warn!("scheduler shutdown: {e}");
    }
    let drained = tokio::select! {
        drained = shared.dispatcher.drain(config.daemon.shutdown_timeout) => drained,
        // A second Ctrl-C / SIGTERM: the operator does not want to wait.
        _ = async {
            while let Some(c) = control_rx.recv().await {
                if c == Control::Stop {
                    return;
                }
            }
            std::future::pending::<()>().await
        } => {
            warn!("asked to stop again: not waiting for runs in flight");
            false
        }
    };
    drained
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use tokio::sync::oneshot;

    fn dispatcher() -> (Arc<Dispatcher>, watch::Sender<bool>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        (Arc::new(Dispatcher::new(stop_rx)), stop_tx)
    }

    /// A run that reports its start and then waits to be released.
    fn held_run(
        started: mpsc::UnboundedSender<&'static str>,
        name: &'static str,
    ) -> (
        impl std::future::Future<Output = ()> + Send,
        oneshot::Sender<()>,
    ) {
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let run = async move {
            let _ = started.send(name);
            let _ = release_rx.await;
        };
        (run, release_tx)
    }

    const LONG: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn a_second_dispatch_of_a_running_scan_is_skipped_and_allowed_after_it_ends() {
        let (d, _stop) = dispatcher();
        let (tx, mut started) = mpsc::unbounded_channel();
        let (run, release) = held_run(tx.clone(), "first");
        let span = tracing::Span::none();
        assert_eq!(
            d.dispatch("web", Duration::ZERO, span.clone(), run),
            Dispatched::Started
        );
        assert_eq!(started.recv().await, Some("first"));
        let (again, _r) = held_run(tx.clone(), "second");
        assert_eq!(
            d.dispatch("web", Duration::ZERO, span.clone(), again),
            Dispatched::AlreadyRunning
        );
        release.send(()).unwrap();
        assert!(d.drain(LONG).await);
        let (third, release) = held_run(tx, "third");
        assert_eq!(
            d.dispatch("web", Duration::ZERO, span, third),
            Dispatched::Started
        );
        assert_eq!(started.recv().await, Some("third"));
        release.send(()).unwrap();
        assert!(d.drain(LONG).await);
    }

    #[tokio::test]
    async fn stop_cancels_runs_still_waiting_for_their_delay() {
        let (d, stop) = dispatcher();
        let waiting_ran = Arc::new(AtomicBool::new(false));
        let flag = waiting_ran.clone();
        assert_eq!(
            d.dispatch("a", LONG, tracing::Span::none(), async move {
                flag.store(true, Ordering::SeqCst);
            }),
            Dispatched::Started
        );
        stop.send(true).unwrap();
        assert!(d.drain(LONG).await, "stop ends the wait at once");
        assert!(!waiting_ran.load(Ordering::SeqCst));
        assert_eq!(
            d.dispatch("c", Duration::ZERO, tracing::Span::none(), async {}),
            Dispatched::Stopping
        );
    }

    #[tokio::test]
    async fn drain_reports_a_run_that_does_not_end_in_time() {
        let (d, _stop) = dispatcher();
        let (tx, mut started) = mpsc::unbounded_channel();
        let (run, _release) = held_run(tx, "stuck");
        d.dispatch("stuck", Duration::ZERO, tracing::Span::none(), run);
        assert_eq!(started.recv().await, Some("stuck"));
        assert!(!d.drain(Duration::from_millis(20)).await);
        assert_eq!(d.in_flight(), 1);
    }

    fn boxed(f: impl std::future::Future<Output = ()> + Send + 'static) -> BoxedRun {
        Box::pin(f)
    }

    #[tokio::test]
    async fn a_push_while_running_queues_one_run_and_later_pushes_join_it() {
        let (d, _stop) = dispatcher();
        let (tx, mut started) = mpsc::unbounded_channel();
        let (first, release_first) = held_run(tx.clone(), "first");
        let span = tracing::Span::none;
        assert_eq!(
            d.dispatch_or_queue("web", span(), 1, boxed(first), boxed(async {})),
            Dispatched::Started
        );
        assert_eq!(started.recv().await, Some("first"));
        let (second, release_second) = held_run(tx.clone(), "second");
        assert_eq!(
            d.dispatch_or_queue("web", span(), 2, boxed(second), boxed(async {})),
            Dispatched::Queued
        );
        let (third, _r) = held_run(tx.clone(), "third");
        assert_eq!(
            d.dispatch_or_queue("web", span(), 3, boxed(third), boxed(async {})),
            Dispatched::Joined(2)
        );
        // A schedule firing meanwhile is still skipped, not queued.
        let (scheduled, _r) = held_run(tx.clone(), "scheduled");
        assert_eq!(
            d.dispatch("web", Duration::ZERO, span(), scheduled),
            Dispatched::AlreadyRunning
        );
        // Another scan (or branch: another key) is not affected.
        let (other, release_other) = held_run(tx.clone(), "other");
        assert_eq!(
            d.dispatch_or_queue("web@dev", span(), 4, boxed(other), boxed(async {})),
            Dispatched::Started
        );
        assert_eq!(started.recv().await, Some("other"));
        release_other.send(()).unwrap();

        release_first.send(()).unwrap();
        assert_eq!(started.recv().await, Some("second"));
        assert_eq!(
            d.in_flight(),
            1,
            "the follow-up runs in the first run's slot"
        );
        release_second.send(()).unwrap();
        assert!(d.drain(LONG).await);
        // The scan is free again: the next push starts at once.
        let (fourth, release) = held_run(tx, "fourth");
        assert_eq!(
            d.dispatch_or_queue("web", span(), 5, boxed(fourth), boxed(async {})),
            Dispatched::Started
        );
        assert_eq!(started.recv().await, Some("fourth"));
        release.send(()).unwrap();
        assert!(d.drain(LONG).await);
        assert!(started.try_recv().is_err(), "no other run started");
    }

    #[tokio::test]
    async fn stop_cancels_a_queued_run_through_its_cancelled_future() {
        let (d, stop) = dispatcher();
        let (tx, mut started) = mpsc::unbounded_channel();
        let (first, release_first) = held_run(tx.clone(), "first");
        d.dispatch_or_queue(
            "web",
            tracing::Span::none(),
            1,
            boxed(first),
            boxed(async {}),
        );
        assert_eq!(started.recv().await, Some("first"));
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = cancelled.clone();
        let (second, _r) = held_run(tx, "second");
        assert_eq!(
            d.dispatch_or_queue(
                "web",
                tracing::Span::none(),
                2,
                boxed(second),
                boxed(async move { flag.store(true, Ordering::SeqCst) })
            ),
            Dispatched::Queued
        );
        stop.send(true).unwrap();
        release_first.send(()).unwrap();
        assert!(d.drain(LONG).await);
        assert!(cancelled.load(Ordering::SeqCst));
        assert!(started.try_recv().is_err(), "the queued run never started");
        assert_eq!(
            d.dispatch_or_queue(
                "web",
                tracing::Span::none(),
                3,
                boxed(async {}),
                boxed(async {})
            ),
            Dispatched::Stopping
        );
    }

    fn config_with_scans(scans: Vec<ScanConfig>) -> Config {
        let instance = |vendor: &str| crate::config::InstanceConfig {
            vendor: vendor.into(),
            ..Default::default()
        };
        Config {
            store: crate::config::StoreConfig {
                path: "/tmp/unused.db".into(),
                retention: Default::default(),
            },
            daemon: Default::default(),
            instances: [("ct".to_string(), instance("codethreat"))]
                .into_iter()
                .chain([("ct2".to_string(), instance("codethreat"))])
                .collect(),
            scans,
            webhooks: Default::default(),
            server: None,
            suppress: Vec::new(),
        }
    }

    fn left_running(scan: &str, instance: &str, branch: Option<&str>) -> RunRow {
        RunRow {
            id: 7,
            scan: scan.into(),
            instance: instance.into(),
            vendor: "codethreat".into(),
            bind_to: "project-1".into(),
            branch: branch.map(Into::into),
            trigger: "cli".into(),
            state: RunState::Running,
            vendor_scan_id: Some("vs-1".into()),
            started_at: "2026-01-01T00:00:00.000Z".into(),
            finished_at: None,
            counts: Default::default(),
            error: None,
        }
    }

    #[test]
    fn a_left_run_belongs_to_the_configured_scan_of_its_name_branch_and_instance() {
        let web = ScanConfig {
            name: "web".into(),
            branch: Some("main".into()),
            enabled: false,
            ..ScanConfig::ad_hoc("codethreat", "ct", "project-1")
        };
        let config = config_with_scans(vec![web]);
        let found = scan_for_abandoned(&config, &left_running("web", "ct", Some("main")));
        assert_eq!(
            found.map(|s| s.name),
            Ok("web".into()),
            "disabled scans too"
        );
        let branch = scan_for_abandoned(&config, &left_running("web@dev", "ct", Some("dev")));
        assert_eq!(branch.map(|s| s.name), Ok("web".into()));
        let other = scan_for_abandoned(&config, &left_running("web", "ct2", Some("main")))
            .expect("the run's own instance is configured");
        assert_eq!(
            (other.instance.as_str(), other.name.as_str()),
            ("ct2", "web"),
            "a vendor scan id is polled on the instance that started it, not on the config's"
        );
        let mut unknown = left_running("web", "ct9", Some("main"));
        unknown.vendor = "codethreat".into();
        assert!(
            scan_for_abandoned(&config, &unknown).is_err(),
            "no such instance"
        );
        // A scan gone from the config: the run goes on by what is stored with it.
        let gone = scan_for_abandoned(&config, &left_running("gone", "ct", None)).unwrap();
        assert_eq!(
            (gone.name.as_str(), gone.bind_to.as_str()),
            ("gone", "project-1")
        );
        // The binding stored with the run wins over today's config.
        let mut moved = left_running("web", "ct", Some("main"));
        moved.bind_to = "project-old".into();
        assert_eq!(
            scan_for_abandoned(&config, &moved).unwrap().bind_to,
            "project-old"
        );
    }

    #[test]
    fn a_left_run_of_an_ad_hoc_scan_gets_the_same_ad_hoc_scan() {
        let config = config_with_scans(Vec::new());
        let row = left_running("codethreat-project-1@main", "ct2", Some("main"));
        let scan = scan_for_abandoned(&config, &row).expect("ad hoc");
        assert_eq!(
            (
                scan.name.as_str(),
                scan.instance.as_str(),
                scan.bind_to.as_str()
            ),
            ("codethreat-project-1", "ct2", "project-1")
        );
        let mut other_vendor = row.clone();
        other_vendor.vendor = "saltsecurity".into();
        assert!(scan_for_abandoned(&config, &other_vendor).is_err());
    }
}
