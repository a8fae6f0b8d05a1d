//! Prometheus metrics: one process-wide registry that the sync path, the HTTP client, the
//! webhook outbox and the listener record into, rendered by `GET /metrics`.
//!
//! Process-wide because every recorder (http.rs, sync.rs, webhooks, server) would otherwise
//! need a handle threaded through constructors that have nothing else to do with metrics.
//!
//! INTERFACE (fixed so parallel work can call it; bodies filled by the metrics work):
//! callers use `metrics::global().<recorder>(…)`; the listener calls [`render`].

use std::time::Duration;

use crate::sync::SyncContext;

/// The registry and its metric families.
#[derive(Debug, Default)]
pub struct Metrics {}

/// The one registry of this process.
pub fn global() -> &'static Metrics {
    static GLOBAL: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();
    GLOBAL.get_or_init(Metrics::default)
}

impl Metrics {
    /// A sync run ended: `outcome` is the run state word (succeeded, failed, interrupted,
    /// timed_out).
    pub fn run_finished(&self, scan: &str, outcome: &str, duration: Duration) {
        let _ = (scan, outcome, duration);
    }

    /// One HTTP attempt to a vendor instance finished; `status` is the HTTP status, or `None`
    /// when no response came (connect error, timeout).
    pub fn vendor_request(&self, instance: &str, status: Option<u16>, latency: Duration) {
        let _ = (instance, status, latency);
    }

    /// The HTTP client is about to retry a request to `instance`.
    pub fn vendor_retry(&self, instance: &str) {
        let _ = instance;
    }

    /// One webhook delivery attempt ended: `outcome` is delivered, retry or gave_up.
    pub fn webhook_delivery(&self, webhook: &str, outcome: &str) {
        let _ = (webhook, outcome);
    }

    /// A request to `POST /hooks/<scan>` was answered: `result` is started, queued,
    /// duplicate, ignored, unauthorized, not_found or bad_request.
    pub fn webhook_trigger(&self, scan: &str, result: &str) {
        let _ = (scan, result);
    }
}

/// The text exposition of every metric, including those read from the store at scrape time
/// (findings by scan/state/severity, last successful sync per scan, outbox depth).
pub async fn render(ctx: &SyncContext) -> anyhow::Result<String> {
    let _ = ctx;
    Ok(String::new())
}
