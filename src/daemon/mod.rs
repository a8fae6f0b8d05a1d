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
//!
//! # Layout
//! - this file: the handle and signals, [`run`] (start-up, the loop, shut-down), pruning;
//! - `dispatch.rs`: what is running and what waits behind it, per scan;
//! - `shared.rs`: the state the loop, the jobs and the listener share, dispatch, webhook
//!   triggers, adoption, reload;
//! - `jobs.rs`: arming each scan's schedule on tokio-cron-scheduler.

use crate::config::{Config, ConfigErrors, ScanConfig};
use crate::schedule::{
    jitter_delay, plan_reload, plan_startup, LastRun, StartupPlan, TRIGGER_RESUME, TRIGGER_SCHEDULE,
};
use crate::server::{Backend, Listener, Pushed, TriggerError, Triggered, TRIGGER_WEBHOOK};
use crate::store::{Claim, RunId, RunRow, RunState, StoreError};
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

mod dispatch;
mod jobs;
mod shared;
#[cfg(test)]
mod tests;

use dispatch::*;
use shared::*;

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

    async fn trigger_push(
        &self,
        scan: &ScanConfig,
        branches: &[String],
        delivery: &str,
        keep: Duration,
    ) -> Result<Pushed, TriggerError> {
        self.0
            .trigger_push(&scan.name, branches, delivery, keep)
            .await
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
            branch_rows = total.branch_rows,
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
    crate::config::set_node(config.daemon.node_name.as_deref());
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
    // Each process in an order of its own: daemons that share a store and start together
    // would otherwise all begin the same scans at the same moment and race for each one
    // behind the store's write lock; in different orders they mostly meet scans another
    // node has begun or finished, which a read tells ([`crate::store::Store::due_run_taken`]).
    let mut scans: Vec<&ScanConfig> = config.scans.iter().filter(|s| s.enabled).collect();
    let order = std::collections::hash_map::RandomState::new();
    scans.sort_by_cached_key(|s| std::hash::BuildHasher::hash_one(&order, &s.name));
    for scan in scans {
        if let Err(e) = shared.schedule_scan(scan).await {
            error!(scan = %scan.name, "cannot schedule: {e:#}");
        }
    }
    let enabled = config.scans.iter().filter(|s| s.enabled).count();
    info!(
        "scansync running: {enabled} scan(s) scheduled, {resumed} run(s) resumed, store {}",
        config.store.location
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
                        config.store.location,
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
