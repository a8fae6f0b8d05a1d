use super::*;

/// The config and connectors current runs start with. Replaced whole on reload; runs in
/// flight keep the `Arc`s they started with.
pub(super) struct Active {
    pub(super) config: Arc<Config>,
    pub(super) ctx: Arc<SyncContext>,
}

/// One scan's job on the scheduler. `generation` tells a firing job whether it is still the
/// current one (a reload may have replaced it while it was firing).
pub(super) struct ScanJob {
    pub(super) generation: u64,
    pub(super) id: Uuid,
}

/// What [`Dispatcher::dispatch`] and [`Dispatcher::dispatch_or_queue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dispatched {
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

pub(super) type BoxedRun = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A run the dispatcher may start: `run` once its delay passed, or `cancelled` instead when
/// stop comes first (to close a run row already begun).
pub(super) struct PendingRun {
    pub(super) delay: Duration,
    pub(super) span: tracing::Span,
    pub(super) run: BoxedRun,
    pub(super) cancelled: Option<BoxedRun>,
}

/// The one run allowed to wait behind a scan's run in flight (webhook pushes), with the
/// tag (run id) later pushes are told.
pub(super) struct FollowUp {
    pub(super) tag: RunId,
    pub(super) job: PendingRun,
}

/// The rules every daemon run start goes through, whatever fired it: one run per scan at a
/// time (at most one more waiting, for webhooks), the jitter delay, and stop. Knows nothing
/// of configs or vendors, so it is tested on its own. The concurrency limits are not here:
/// the runs take them ([`crate::sync::RunLimits`]), so the CLI's runs count too.
pub(super) struct Dispatcher {
    /// Scans with a run in flight (or waiting for its delay or a permit), each with its
    /// waiting follow-up.
    pub(super) running: Mutex<HashMap<String, Option<FollowUp>>>,
    /// How many scans have runs in flight; shutdown waits for zero.
    pub(super) inflight: watch::Sender<usize>,
    pub(super) stop: watch::Receiver<bool>,
}

/// Counts a scan's task out of `inflight` however it ends, and removes the scan from
/// `running` unless the task already did (a panicking run must not block the scan forever).
pub(super) struct InflightGuard {
    pub(super) dispatcher: Arc<Dispatcher>,
    pub(super) scan: String,
    pub(super) armed: bool,
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
pub(super) async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

impl Dispatcher {
    pub(super) fn new(stop: watch::Receiver<bool>) -> Dispatcher {
        Dispatcher {
            running: Mutex::new(HashMap::new()),
            inflight: watch::channel(0).0,
            stop,
        }
    }

    pub(super) fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    pub(super) fn in_flight(&self) -> usize {
        *self.inflight.borrow()
    }

    /// Spawns `run` for `scan` unless a run of it is going; `run` starts after `delay`.
    /// Waiting ends early on stop: nothing was started, so nothing is recorded. Returns at
    /// once.
    pub(super) fn dispatch<F>(
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
    pub(super) fn dispatch_or_queue(
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
    pub(super) fn spawn(self: &Arc<Self>, scan: &str, first: PendingRun) {
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
    pub(super) async fn run_job(&self, job: PendingRun) {
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
    pub(super) async fn drain(&self, timeout: Duration) -> bool {
        let mut rx = self.inflight.subscribe();
        let drained = tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0)).await;
        drained.is_ok()
    }
}
