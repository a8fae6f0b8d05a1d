use super::*;

pub(super) struct Shared {
    pub(super) config_path: PathBuf,
    pub(super) active: RwLock<Active>,
    pub(super) dispatcher: Arc<Dispatcher>,
    pub(super) events: broadcast::Sender<DaemonEvent>,
    pub(super) scheduler: JobScheduler,
    pub(super) jobs: Mutex<HashMap<String, ScanJob>>,
    pub(super) next_generation: AtomicU64,
    /// True from the moment every job is scheduled until stop (what `/readyz` reports).
    pub(super) scheduling: AtomicBool,
}

impl Shared {
    pub(super) fn current(&self) -> (Arc<Config>, Arc<SyncContext>) {
        let a = self.active.read().unwrap_or_else(|e| e.into_inner());
        (a.config.clone(), a.ctx.clone())
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.dispatcher.is_stopping()
    }

    /// Starts a run of `scan_name` (as the current config has it) unless one is already
    /// going; returns at once. `due` is the instant the run serves: a run of another daemon
    /// on the same store that started at or after it and succeeded serves it too (see
    /// [`RunOptions::covered_since`]).
    pub(super) fn dispatch(
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

    /// A webhook push (see [`crate::server::Backend::trigger_push`]): its delivery and a
    /// run row per branch are recorded in one transaction, before the runs wait, so the
    /// sender is told their ids and a node that dies before running them leaves them for
    /// another ([`Shared::adopt_abandoned`]); each run then starts now or is queued behind
    /// the run in flight of that scan and branch.
    pub(super) async fn trigger_push(
        self: &Arc<Self>,
        scan_name: &str,
        branches: &[String],
        delivery: &str,
        keep: Duration,
    ) -> Result<Pushed, TriggerError> {
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
        let vendor = ctx.vendors.get(&scan.instance).ok_or_else(|| {
            TriggerError::Failed(
                crate::sync::SyncError::NoConnector(scan.name.clone(), scan.instance.clone())
                    .to_string(),
            )
        })?;
        let scopes: Vec<_> = branches
            .iter()
            .map(|branch| {
                crate::sync::scope_for(&scan, vendor.name(), &push_options(branch), ctx.fix_guard)
            })
            .collect();
        let (name, key) = (scan.name.clone(), delivery.to_string());
        let (claim, run_ids) = ctx
            .with_store(move |s| s.claim_push(&name, &key, keep, &scopes))
            .await
            .map_err(|e| TriggerError::Store(e.to_string()))?;
        if let Claim::Duplicate {
            run_id,
            received_at,
        } = claim
        {
            return Ok(Pushed::Duplicate {
                run_id,
                received_at,
            });
        }
        let mut outcomes = Vec::new();
        for (branch, run_id) in branches.iter().zip(run_ids) {
            let dispatched = self.dispatch_push(&ctx, scan.clone(), branch, run_id);
            let outcome = match dispatched {
                Dispatched::Started => Ok(Triggered {
                    run_id,
                    queued: false,
                }),
                Dispatched::Queued => Ok(Triggered {
                    run_id,
                    queued: true,
                }),
                Dispatched::Joined(waiting) => {
                    discard_unstarted(&ctx, run_id, "a run already waits").await;
                    Ok(Triggered {
                        run_id: waiting,
                        queued: true,
                    })
                }
                Dispatched::Stopping | Dispatched::AlreadyRunning => {
                    discard_unstarted(&ctx, run_id, "stopping").await;
                    Err(TriggerError::Stopping)
                }
            };
            outcomes.push((branch.clone(), outcome));
        }
        Ok(Pushed::Runs(outcomes))
    }

    /// Hands queued push run `run_id` of `scan` on `branch` (begun with its delivery, or
    /// taken over from a process that is gone) to the dispatcher: started now, queued behind
    /// the run in flight of that scan and branch, or joined to the one already waiting.
    fn dispatch_push(
        self: &Arc<Self>,
        ctx: &Arc<SyncContext>,
        scan: ScanConfig,
        branch: &str,
        run_id: RunId,
    ) -> Dispatched {
        let opts = RunOptions {
            run_id: Some(run_id),
            ..push_options(branch)
        };
        let key = crate::sync::store_scan_name(&scan, &opts);
        let span = tracing::info_span!("run", scan = %key, run_id, trigger = TRIGGER_WEBHOOK);
        let run = {
            let (shared, ctx) = (self.clone(), ctx.clone());
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
        if dispatched == Dispatched::Queued {
            info!(scan = %key, run_id, "a run of this scan is going; this one waits for it");
        }
        if let Dispatched::Joined(waiting) = dispatched {
            info!(scan = %key, run_id = waiting, "a run of this scan already waits; the push joins it");
        }
        dispatched
    }

    /// Takes over the runs that processes which are gone left `running`: `scansync scan
    /// --async` and `--timeout` leave theirs on purpose, a killed daemon by accident. A run
    /// with a vendor scan id, of a scan the config has (or the ad hoc scan `scan` made up),
    /// is finished by a new run that polls that vendor scan, started no second time; the
    /// others are marked interrupted. Runs of live processes (pid and start time) are not
    /// touched, and a run of a scan that is busy here waits for the next sweep. Called at
    /// start-up, every [`crate::store::heartbeat_every`] and on reload; returns how many runs were taken over.
    pub(super) async fn adopt_abandoned(self: &Arc<Self>) -> Result<usize, StoreError> {
        let (config, ctx) = self.current();
        let abandoned = ctx.with_store(|s| s.abandoned_runs()).await?;
        let mut adopted = 0;
        for row in abandoned {
            if let Some(taken) = self.adopt_queued_push(&config, &ctx, &row).await? {
                adopted += usize::from(taken);
                continue;
            }
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

    /// Takes over `row` when it is a push's run that never started (no vendor scan, no
    /// page) and runs it as a push of this process: unlike a schedule's run, no later tick
    /// runs a push again, so ending it would lose the push its sender was told runs.
    /// `None` when `row` is not such a run (the caller deals with it), else whether it was
    /// taken (another process may have been first).
    async fn adopt_queued_push(
        self: &Arc<Self>,
        config: &Config,
        ctx: &Arc<SyncContext>,
        row: &RunRow,
    ) -> Result<Option<bool>, StoreError> {
        let unstarted = row.vendor_scan_id.is_none() && row.counts.pages == 0;
        let (true, Some(branch), Ok(scan)) = (
            row.trigger == TRIGGER_WEBHOOK && unstarted,
            row.branch.clone(),
            scan_for_abandoned(config, row),
        ) else {
            return Ok(None);
        };
        let id = row.id;
        let Some(row) = ctx.with_store(move |s| s.adopt_queued_run(id)).await? else {
            return Ok(Some(false));
        };
        info!(
            scan = %row.scan,
            run_id = id,
            "a push's run left unstarted by a process that is gone: taken over"
        );
        match self.dispatch_push(ctx, scan, &branch, id) {
            Dispatched::Started | Dispatched::Queued => {}
            Dispatched::Joined(_) => discard_unstarted(ctx, id, "a run already waits").await,
            // Left as it is, owned by this process: abandoned again once it is gone.
            Dispatched::Stopping | Dispatched::AlreadyRunning => {}
        }
        Ok(Some(true))
    }

    /// Starts the run that takes `row` over, unless a run of that scan (and branch) is going
    /// here: then the row stays as it is for the next sweep. True when started.
    pub(super) fn dispatch_adoption(
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

    pub(super) async fn run_one(&self, ctx: &SyncContext, scan: &ScanConfig, opts: RunOptions) {
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

    /// SIGHUP: the new config if it is valid, the old one (and every error logged) if not.
    pub(super) async fn reload(self: &Arc<Self>) {
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

    pub(super) async fn try_reload(self: &Arc<Self>) -> Result<String, ReloadError> {
        let new = Config::load(&self.config_path, crate::vendors::REGISTRY)
            .map_err(ReloadError::Invalid)?;
        let (old, old_ctx) = self.current();
        if new.server != old.server {
            warn!("[server] changed; the listener keeps its address, TLS files and metrics token until scansync restarts (webhook settings of scans apply now)");
        }
        if new.store.location != old.store.location {
            return Err(ReloadError::Other(anyhow::anyhow!(
                "[store] changed from {} to {}; moving the store needs a restart (systemctl restart scansync)",
                old.store.location,
                new.store.location
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

    pub(super) fn status_line(&self) -> String {
        let (config, _) = self.current();
        let enabled = config.scans.iter().filter(|s| s.enabled).count();
        format!(
            "{enabled} scan(s) scheduled, {} run(s) in flight",
            self.dispatcher.in_flight()
        )
    }
}

/// How a push's run is started: trigger `webhook`, on `branch`.
fn push_options(branch: &str) -> RunOptions {
    RunOptions {
        trigger: TRIGGER_WEBHOOK.to_string(),
        branch: Some(branch.to_string()),
        ..RunOptions::default()
    }
}

/// Deletes push run `run_id` that turned out not to be needed (it joined a run already
/// waiting, or the daemon is stopping) before it did anything.
async fn discard_unstarted(ctx: &SyncContext, run_id: RunId, why: &'static str) {
    if let Err(e) = ctx
        .with_store(move |s| s.discard_unstarted_run(run_id))
        .await
    {
        warn!("cannot remove run {run_id} ({why}): {e}");
    }
}
