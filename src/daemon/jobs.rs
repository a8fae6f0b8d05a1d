use super::*;

impl Shared {
    /// The scheduling half of start-up and reload for one enabled scan.
    pub(super) async fn schedule_scan(self: &Arc<Self>, scan: &ScanConfig) -> anyhow::Result<()> {
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
    pub(super) fn arm_cron(
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

    pub(super) fn new_generation(&self) -> u64 {
        self.next_generation.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn job_is_current(&self, scan: &str, generation: u64) -> bool {
        !self.is_stopping()
            && self
                .jobs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(scan)
                .is_some_and(|j| j.generation == generation)
    }

    /// For one-shot jobs: true (and forgets the job) when it is still the scan's job.
    pub(super) fn take_job_if_current(&self, scan: &str, generation: u64) -> bool {
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
    pub(super) async fn add_job(
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

    pub(super) async fn unschedule(&self, scan: &str) {
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
}
