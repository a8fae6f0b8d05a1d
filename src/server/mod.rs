//! The optional HTTP listener inside the daemon (`[server]`): webhook-triggered scans
//! ([`hooks`]), `/healthz`, `/readyz` and `/metrics` ([`health`]).
//!
//! It binds before the daemon opens the store, so that `/healthz` answers from the first
//! moment and `/readyz` can say 503 until the store is open and the scheduler runs. The
//! daemon hands it a [`Backend`] once it is ready; until then every route that needs the
//! store answers 503.
//!
//! The accept loop is ours (hyper-util over tokio, tokio-rustls for HTTPS) rather than
//! `axum::serve`, because that is where hyper's header read timeout, the TLS handshake
//! timeout and graceful shutdown of TLS connections are set; every crate it uses was
//! already in the dependency tree through reqwest and axum.

pub use crate::glob;
mod health;
mod hooks;
pub mod platform;
pub mod schedule_metrics;
pub mod verify;
pub use hooks::verify_signature;

use crate::config::{Config, ScanConfig, ServerConfig};
use crate::secret::Secret;
use crate::store::RunId;
use crate::sync::SyncContext;
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// The trigger recorded on runs a push started.
pub const TRIGGER_WEBHOOK: &str = "webhook";

/// A request's headers must arrive within this; also how long an idle keep-alive
/// connection is kept.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body must arrive within this (408 otherwise).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A TLS handshake must finish within this.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// On stop, requests in flight get this long to finish before connections are dropped.
const GRACEFUL_STOP: Duration = Duration::from_secs(5);

/// The daemon as the listener sees it, handed over once the store is open and the jobs
/// are scheduled.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The config and context new runs start with (replaced on reload).
    fn current(&self) -> (Arc<Config>, Arc<SyncContext>);

    /// True while the scheduler runs and the daemon is not stopping.
    fn scheduler_running(&self) -> bool;

    /// A push of `scan` to `branches` with replay key `delivery`: records the delivery and
    /// begins a run per branch (trigger `webhook`) in one store transaction, unless the
    /// delivery is already recorded (remembered for `keep`, see
    /// [`crate::store::Store::claim_push`]); then starts each run now, or queues it behind
    /// the run of that scan and branch in flight. An error: nothing was recorded.
    async fn trigger_push(
        &self,
        scan: &ScanConfig,
        branches: &[String],
        delivery: &str,
        keep: Duration,
    ) -> Result<Pushed, TriggerError>;
}

/// What became of a push.
#[derive(Debug)]
pub enum Pushed {
    /// The delivery was recorded before, at `received_at`, with run `run_id` when it began
    /// one: nothing started now.
    Duplicate {
        run_id: Option<RunId>,
        received_at: String,
    },
    /// Recorded now: each branch with what became of its run.
    Runs(Vec<(String, Result<Triggered, TriggerError>)>),
}

/// What became of a webhook trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Triggered {
    /// The run row, created at once so the sender can be told its id.
    pub run_id: RunId,
    /// True when it waits for the run in flight of the same scan and branch (at most one
    /// run waits; a push while one waits joins that one and gets its id).
    pub queued: bool,
}

/// Why a trigger started nothing.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("scansync is stopping")]
    Stopping,
    #[error("the run could not be started: {0}")]
    Failed(String),
    /// The delivery and its runs could not be recorded (nothing was).
    #[error("the store cannot record the delivery: {0}")]
    Store(String),
}

/// What every handler shares.
struct ServerState {
    backend: watch::Receiver<Option<Arc<dyn Backend>>>,
    /// From `[server] metrics_token_file`, fixed at start-up.
    metrics_token: Option<Secret>,
    /// The store's part of `/metrics`, refreshed at most every few seconds.
    metrics_cache: crate::metrics::SnapshotCache,
    /// The config's part of `/metrics`, worked out once per config.
    schedule_metrics: schedule_metrics::ScheduleCache,
}

impl ServerState {
    fn backend(&self) -> Option<Arc<dyn Backend>> {
        self.backend.borrow().clone()
    }
}

/// A running listener. Dropping it stops accepting at once; [`Listener::shutdown`] also
/// lets requests in flight finish.
pub struct Listener {
    addr: SocketAddr,
    https: bool,
    backend: watch::Sender<Option<Arc<dyn Backend>>>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Listener {
    /// Binds `[server] listen` and starts serving. Fails when the address cannot be bound
    /// or the TLS files cannot be read.
    pub async fn start(config: &ServerConfig) -> anyhow::Result<Listener> {
        let tls = match (&config.tls_cert_file, &config.tls_key_file) {
            (Some(cert), Some(key)) => Some(tokio_rustls::TlsAcceptor::from(
                crate::tls::server_config(cert, key)
                    .map_err(|(_, e)| anyhow::anyhow!("[server] {e}"))?,
            )),
            _ => None,
        };
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            anyhow::anyhow!(
                "[server] cannot listen on {}: {e}; is another process using the port?",
                config.listen
            )
        })?;
        let addr = listener.local_addr()?;
        let (backend_tx, backend_rx) = watch::channel(None);
        let (stop_tx, stop_rx) = watch::channel(false);
        let state = Arc::new(ServerState {
            backend: backend_rx,
            metrics_token: config.metrics_token.clone(),
            metrics_cache: Default::default(),
            schedule_metrics: schedule_metrics::ScheduleCache::new(chrono::Utc::now()),
        });
        let https = tls.is_some();
        let cap = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
        let task = tokio::spawn(serve(listener, tls, router(state), cap, stop_rx));
        info!(
            "listening on {}://{addr} (POST /hooks/<scan>, GET /healthz, /readyz, /metrics)",
            if https { "https" } else { "http" }
        );
        Ok(Listener {
            addr,
            https,
            backend: backend_tx,
            stop: stop_tx,
            task: Some(task),
        })
    }

    /// The address actually bound (the port is chosen by the system for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The daemon is ready: hooks, `/readyz` and `/metrics` may use it from now on.
    pub fn set_backend(&self, backend: Arc<dyn Backend>) {
        self.backend.send_replace(Some(backend));
    }

    /// Stops accepting, lets requests in flight finish (up to a few seconds), returns.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.backend.send_replace(None);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/hooks/{scan}", post(hooks::hook))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(state)
}

async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Accepts until `stop`, then waits (briefly) for connections in flight. At most `cap`
/// connections are served at once: one past it is closed as it arrives (cheaper than
/// queueing it behind connections that may be a flood), and said so at a bounded rate.
async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    cap: Arc<tokio::sync::Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut refused = crate::logging::RateLimited::new(Duration::from_secs(10));
    let max = cap.available_permits();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop_requested(&mut stop) => break,
        };
        let Ok(permit) = cap.clone().try_acquire_owned() else {
            drop(tcp);
            if let Some(also) = refused.hit() {
                warn!(
                    %peer,
                    "listener: connection closed, {max} already served at once ([server] max_connections){}",
                    crate::logging::held_back(also)
                );
            }
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let result = match tls {
                None => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(tcp), service))
                        .await
                }
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                            .await
                        {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, "TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(GRACEFUL_STOP, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            "listener: requests still in flight after {}s; closing them",
            GRACEFUL_STOP.as_secs()
        );
    }
}
