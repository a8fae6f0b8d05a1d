//! Prometheus metrics: one process-wide registry that the sync path, the HTTP client, the
//! webhook outbox and the listener record into, rendered by `GET /metrics`.
//!
//! Process-wide because every recorder (http.rs, sync.rs, webhooks, server) would otherwise
//! need a handle threaded through constructors that have nothing else to do with metrics, and
//! because a reload rebuilds the sync context: counters kept here survive it. The families
//! and their labels are documented for operators in docs/metrics.md.
//!
//! Callers use `metrics::global().<recorder>(…)`; the listener calls [`render`] and serves
//! the text with [`CONTENT_TYPE`].
//!
//! Two kinds of families:
//! - recorded as things happen (runs, vendor requests, retries, webhook deliveries and
//!   triggers): counters and histograms in [`Metrics`];
//! - read from the store at scrape time (findings by scan/state/severity, last successful
//!   and failed sync per scan, the outbox): the store is the truth for these, and a gauge
//!   kept in memory would be wrong after a restart, or after a run by another process
//!   (`scansync scan` beside the daemon).
//!
//! # Families
//! | name | type | labels |
//! | --- | --- | --- |
//! | `scansync_runs_total` | counter | `scan`, `outcome` (succeeded, failed, interrupted, timed_out) |
//! | `scansync_run_duration_seconds` | histogram | `scan` |
//! | `scansync_findings` | gauge | `scan`, `state`, `severity` (every combination, zeros included; `false_positive` and `accepted` are the triaged ones) |
//! | `scansync_acceptances_expiring_7d` | gauge | `scan` (accepted findings whose `until` is within 7 days, or already past and not yet reopened by a run) |
//! | `scansync_last_successful_sync_timestamp_seconds` | gauge | `scan` |
//! | `scansync_last_failed_sync_timestamp_seconds` | gauge | `scan` (failed or timed out) |
//! | `scansync_vendor_requests_total` | counter | `instance`, `status_class` (2xx, 3xx, 4xx, 5xx, error) |
//! | `scansync_vendor_request_duration_seconds` | histogram | `instance` |
//! | `scansync_vendor_retries_total` | counter | `instance` |
//! | `scansync_webhook_deliveries_total` | counter | `webhook`, `outcome` |
//! | `scansync_webhook_triggers_total` | counter | `scan`, `result` |
//! | `scansync_webhook_outbox_depth` | gauge | |
//! | `scansync_webhook_outbox_oldest_pending_timestamp_seconds` | gauge | `webhook` (those with notifications to deliver) |
//! | `scansync_ready` | gauge | (1 when `/readyz` would answer 200; the listener's only) |
//!
//! `scan` is the store's scan name: a branch scanned apart from the configured one shows as
//! `name@branch`, as in `scansync findings` and `scansync runs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode_registry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::finding::Severity;
use crate::store::Reader;
use crate::store::{FindingCounts, FindingState};

/// The media type of [`render`]'s text: the Prometheus text exposition format 0.0.4, which
/// every Prometheus-compatible scraper reads and `promtool check metrics` validates.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Run durations: vendor scans take from seconds (a passive vendor's listing) to hours.
const RUN_DURATION_BUCKETS: [f64; 14] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
    28800.0,
];
/// Vendor request latencies: a status poll is milliseconds, a 500-finding page can take
/// seconds, and anything near the request timeout (60 s by default) is a problem.
const REQUEST_DURATION_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    scan: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScanLabels {
    scan: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    instance: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    webhook: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    webhook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    scan: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    scan: String,
    state: &'static str,
    severity: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The registry and its metric families.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    run_duration: HistogramFamily<ScanLabels>,
    vendor_requests: Family<RequestLabels, Counter>,
    vendor_request_duration: HistogramFamily<InstanceLabels>,
    vendor_retries: Family<InstanceLabels, Counter>,
    webhook_deliveries: Family<DeliveryLabels, Counter>,
    webhook_triggers: Family<TriggerLabels, Counter>,
    /// Bumped at every run end: a [`SnapshotCache`] older than the last run end is stale.
    runs_ended: AtomicU64,
}

/// The one registry of this process.
/// A registry whose every series carries `node` (see [`crate::config::node`]).
pub fn node_registry() -> Registry {
    Registry::with_labels(std::iter::once((
        std::borrow::Cow::Borrowed("node"),
        std::borrow::Cow::Borrowed(crate::config::node()),
    )))
}

pub fn global() -> &'static Metrics {
    static GLOBAL: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();
    GLOBAL.get_or_init(Metrics::default)
}

impl Default for Metrics {
    fn default() -> Self {
        let run_duration: HistogramFamily<ScanLabels> =
            Family::new_with_constructor(|| Histogram::new(RUN_DURATION_BUCKETS));
        let vendor_request_duration: HistogramFamily<InstanceLabels> =
            Family::new_with_constructor(|| Histogram::new(REQUEST_DURATION_BUCKETS));
        let m = Metrics {
            registry: node_registry(),
            runs: Family::default(),
            run_duration,
            vendor_requests: Family::default(),
            vendor_request_duration,
            vendor_retries: Family::default(),
            webhook_deliveries: Family::default(),
            webhook_triggers: Family::default(),
            runs_ended: AtomicU64::new(0),
        };
        let mut registry = node_registry();
        // Counter names are given without `_total`: the encoder appends it to the samples.
        registry.register(
            "scansync_runs",
            "Sync runs that ended, by scan and outcome (succeeded, failed, interrupted, timed_out)",
            m.runs.clone(),
        );
        registry.register(
            "scansync_run_duration_seconds",
            "How long sync runs took from start to end, by scan",
            m.run_duration.clone(),
        );
        registry.register(
            "scansync_vendor_requests",
            "HTTP requests to vendor instances (each attempt, retries included), by instance and status class (2xx, 3xx, 4xx, 5xx, or error when no response came)",
            m.vendor_requests.clone(),
        );
        registry.register(
            "scansync_vendor_request_duration_seconds",
            "Latency of HTTP requests to vendor instances, body read included, by instance",
            m.vendor_request_duration.clone(),
        );
        registry.register(
            "scansync_vendor_retries",
            "Retries of HTTP requests to vendor instances, by instance",
            m.vendor_retries.clone(),
        );
        registry.register(
            "scansync_webhook_deliveries",
            "Outgoing webhook delivery attempts, by webhook and outcome (delivered, retry, gave_up)",
            m.webhook_deliveries.clone(),
        );
        registry.register(
            "scansync_webhook_triggers",
            "Requests to POST /hooks/<scan>, by scan and result (started, queued, duplicate, ignored, unauthorized, not_found, bad_request, unavailable)",
            m.webhook_triggers.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// How many runs of this process have ended: a change makes the next scrape read the
    /// store again ([`SnapshotCache`]).
    pub fn runs_ended(&self) -> u64 {
        self.runs_ended.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A sync run ended: `outcome` is the run state word (succeeded, failed, interrupted,
    /// timed_out).
    pub fn run_finished(&self, scan: &str, outcome: &str, duration: Duration) {
        self.runs_ended
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.runs
            .get_or_create(&RunLabels {
                scan: scan.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.run_duration
            .get_or_create(&ScanLabels {
                scan: scan.to_string(),
            })
            .observe(duration.as_secs_f64());
    }

    /// One HTTP attempt to a vendor instance finished; `status` is the HTTP status, or `None`
    /// when no response came (connect error, timeout).
    pub fn vendor_request(&self, instance: &str, status: Option<u16>, latency: Duration) {
        self.vendor_requests
            .get_or_create(&RequestLabels {
                instance: instance.to_string(),
                status_class: status_class(status),
            })
            .inc();
        self.vendor_request_duration
            .get_or_create(&InstanceLabels {
                instance: instance.to_string(),
            })
            .observe(latency.as_secs_f64());
    }

    /// The HTTP client is about to retry a request to `instance`.
    pub fn vendor_retry(&self, instance: &str) {
        self.vendor_retries
            .get_or_create(&InstanceLabels {
                instance: instance.to_string(),
            })
            .inc();
    }

    /// One webhook delivery attempt ended: `outcome` is delivered, retry or gave_up.
    pub fn webhook_delivery(&self, webhook: &str, outcome: &str) {
        self.webhook_deliveries
            .get_or_create(&DeliveryLabels {
                webhook: webhook.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// `webhook` is configured: its delivery series start at 0, because a counter series that
    /// appears with its first increment is no increase, and a first give-up (a 410 Gone gives
    /// up at once) would slip past `increase()` and the alert on it.
    pub fn webhook_configured(&self, webhook: &str) {
        for outcome in ["delivered", "retry", "gave_up"] {
            // Created is enough: the guard only holds the family's lock.
            let _ = self.webhook_deliveries.get_or_create(&DeliveryLabels {
                webhook: webhook.to_string(),
                outcome: outcome.to_string(),
            });
        }
    }

    /// A request to `POST /hooks/<scan>` was answered: `result` is started, queued,
    /// duplicate, ignored, unauthorized, not_found, bad_request or unavailable (503).
    pub fn webhook_trigger(&self, scan: &str, result: &str) {
        self.webhook_triggers
            .get_or_create(&TriggerLabels {
                scan: scan.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// The recorded families (not the store-backed ones) in the Prometheus text format.
    pub fn render_recorded(&self) -> String {
        let mut openmetrics = String::new();
        encode_registry(&mut openmetrics, &self.registry).expect("writing to a String");
        to_prometheus_text(&openmetrics)
    }
}

/// `2xx` … `5xx` for an HTTP status, `error` when no response came (or a status outside
/// 200..=599, which no well-behaved server sends).
fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "error",
    }
}

/// What the store says at scrape time.
#[derive(Debug, Default)]
pub struct StoreSnapshot {
    /// Every scan with its findings by state and severity.
    pub findings: BTreeMap<String, FindingCounts>,
    /// Per scan, the end of its latest successful run (RFC 3339).
    pub last_success: BTreeMap<String, String>,
    /// Per scan, the end of its latest failed or timed-out run (RFC 3339).
    pub last_failure: BTreeMap<String, String>,
    /// Per scan, when its first run started (RFC 3339); for the listener's schedule families.
    pub scan_created: BTreeMap<String, String>,
    /// Webhook notifications not yet delivered (nor given up).
    pub outbox_depth: u64,
    /// Per webhook with notifications to deliver, when the oldest was written (RFC 3339).
    pub outbox_oldest_pending: BTreeMap<String, String>,
    /// Per scan, accepted findings whose acceptance ends within the next 7 days (or has
    /// ended without a run since); scans without any are absent.
    pub acceptances_expiring_7d: BTreeMap<String, u64>,
}

/// How far ahead `scansync_acceptances_expiring_7d` looks.
const EXPIRING_WITHIN: chrono::Duration = chrono::Duration::days(7);

/// The text exposition of every metric, including those read from the store at scrape time
/// (findings by scan/state/severity, last successful sync per scan, outbox depth).
///
/// The store is read now, on the read-only connection: the uncached form of
/// [`SnapshotCache::render`].
pub async fn render(reader: &Reader) -> anyhow::Result<String> {
    SnapshotCache::default()
        .render(reader, |_| String::new())
        .await
}

/// What the store says now, read on the read-only connection.
async fn store_snapshot(reader: &Reader) -> anyhow::Result<StoreSnapshot> {
    let snapshot = reader
        .read(|s| {
            Ok(StoreSnapshot {
                findings: s.finding_counts()?,
                last_success: s.last_successful_syncs()?,
                last_failure: s.last_failed_syncs()?,
                scan_created: s.scans_created()?,
                outbox_depth: s.outbox_depth()?,
                outbox_oldest_pending: s.outbox_oldest_pending()?,
                acceptances_expiring_7d: s.acceptances_expiring(
                    &(chrono::Utc::now() + EXPIRING_WITHIN)
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                )?,
            })
        })
        .await?;
    Ok(snapshot)
}

/// How long the store's part of `/metrics` is served from one read.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(5);

/// The store's part of `/metrics`, read at most once per [`SNAPSHOT_EVERY`] (or after a run
/// of this process ended): scrapes in between (several Prometheus servers, a dashboard) get
/// the same text, and one refresh runs at a time, the others waiting for its result, so a
/// scrape storm costs the store one read every few seconds.
#[derive(Debug, Default)]
pub struct SnapshotCache {
    slot: tokio::sync::Mutex<Option<CachedStoreText>>,
}

#[derive(Debug)]
struct CachedStoreText {
    read_at: std::time::Instant,
    runs_ended: u64,
    snapshot: std::sync::Arc<StoreSnapshot>,
    text: std::sync::Arc<String>,
}

impl SnapshotCache {
    /// The whole exposition: this process's counters now, the store's part from the cache,
    /// then what `more` makes of the same snapshot (families that also need what only the
    /// caller knows, such as the config in force).
    pub async fn render(
        &self,
        reader: &Reader,
        more: impl FnOnce(&StoreSnapshot) -> String,
    ) -> anyhow::Result<String> {
        let runs_ended = global().runs_ended();
        let (snapshot, store_text) = {
            let mut slot = self.slot.lock().await;
            match slot.as_ref() {
                Some(c) if c.read_at.elapsed() < SNAPSHOT_EVERY && c.runs_ended == runs_ended => {
                    (c.snapshot.clone(), c.text.clone())
                }
                _ => {
                    let snapshot = std::sync::Arc::new(store_snapshot(reader).await?);
                    let text = std::sync::Arc::new(render_store(&snapshot));
                    *slot = Some(CachedStoreText {
                        read_at: std::time::Instant::now(),
                        runs_ended,
                        snapshot: snapshot.clone(),
                        text: text.clone(),
                    });
                    (snapshot, text)
                }
            }
        };
        let mut text = global().render_recorded();
        text.push_str(&store_text);
        text.push_str(&more(&snapshot));
        Ok(text)
    }
}

/// A gauge per key of `times` (RFC 3339) in Unix seconds. A time the store cannot parse was
/// written by hand; leaving its series out is better than a made-up value.
fn timestamps<L>(
    times: &BTreeMap<String, String>,
    labels: impl Fn(&str) -> L,
) -> Family<L, Gauge<f64, AtomicU64>>
where
    L: Clone + std::hash::Hash + Eq,
{
    let family: Family<L, Gauge<f64, AtomicU64>> = Family::default();
    for (key, at) in times {
        if let Some(seconds) = unix_seconds(at) {
            family.get_or_create(&labels(key)).set(seconds);
        }
    }
    family
}

/// An RFC 3339 time in Unix seconds (milliseconds kept); `None` when it does not parse.
pub fn unix_seconds(rfc3339: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|at| at.timestamp_millis() as f64 / 1000.0)
}

/// The store-backed families: findings (every state × severity of every scan, zeros
/// included, so a count that drops to zero reads as 0 rather than disappearing), the last
/// successful and failed sync times, and the webhook outbox (depth, oldest waiting).
pub fn render_store(snapshot: &StoreSnapshot) -> String {
    let findings: Family<FindingLabels, Gauge> = Family::default();
    for (scan, counts) in &snapshot.findings {
        for state in FindingState::ALL {
            for severity in Severity::ALL {
                let n = counts.get(&(state, severity)).copied().unwrap_or(0);
                findings
                    .get_or_create(&FindingLabels {
                        scan: scan.clone(),
                        state: state.as_str(),
                        severity: severity.as_str(),
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }
    let scan = |scan: &str| ScanLabels {
        scan: scan.to_string(),
    };
    let last_success = timestamps(&snapshot.last_success, scan);
    let last_failure = timestamps(&snapshot.last_failure, scan);
    let oldest_pending = timestamps(&snapshot.outbox_oldest_pending, |webhook| WebhookLabels {
        webhook: webhook.to_string(),
    });
    // Every scan, zeros included, like the findings.
    let expiring: Family<ScanLabels, Gauge> = Family::default();
    for scan in snapshot.findings.keys() {
        let n = snapshot
            .acceptances_expiring_7d
            .get(scan)
            .copied()
            .unwrap_or(0);
        expiring
            .get_or_create(&ScanLabels { scan: scan.clone() })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    let outbox: Gauge = Gauge::default();
    outbox.set(i64::try_from(snapshot.outbox_depth).unwrap_or(i64::MAX));
    let mut registry = node_registry();
    registry.register(
        "scansync_webhook_outbox_depth",
        "Webhook notifications waiting in the outbox for delivery",
        outbox,
    );
    registry.register(
        "scansync_webhook_outbox_oldest_pending_timestamp_seconds",
        "When the oldest notification waiting for delivery to each webhook was written, in Unix seconds (no series for a webhook with none waiting)",
        oldest_pending,
    );
    registry.register(
        "scansync_findings",
        "Findings in the store, by scan, lifecycle state and severity",
        findings,
    );
    registry.register(
        "scansync_acceptances_expiring_7d",
        "Accepted findings whose acceptance ends within 7 days (or has ended and awaits the scan's next run)",
        expiring,
    );
    registry.register(
        "scansync_last_successful_sync_timestamp_seconds",
        "When the latest successful sync run of each scan ended, in Unix seconds",
        last_success,
    );
    registry.register(
        "scansync_last_failed_sync_timestamp_seconds",
        "When the latest failed or timed-out sync run of each scan ended, in Unix seconds",
        last_failure,
    );
    let mut openmetrics = String::new();
    encode_registry(&mut openmetrics, &registry).expect("writing to a String");
    to_prometheus_text(&openmetrics)
}

/// `scansync_ready`: 1 when `/readyz` would answer 200. A daemon whose store takes no writes
/// still serves /metrics, so `up` alone cannot tell an alert that it is not ready.
pub fn render_ready(ready: bool) -> String {
    let gauge: Gauge = Gauge::default();
    gauge.set(i64::from(ready));
    let mut registry = node_registry();
    registry.register(
        "scansync_ready",
        "1 when the daemon is ready (as GET /readyz decides: the store took its heartbeat write lately and answers reads, the scheduler runs), else 0",
        gauge,
    );
    let mut text = String::new();
    encode_registry(&mut text, &registry).expect("writing to a String");
    text
}

/// Turns prometheus-client's OpenMetrics text (without the `# EOF` line, which
/// `encode_registry` leaves out) into the Prometheus text format 0.0.4.
///
/// The two differ, for what this module registers, only in counters: OpenMetrics names the
/// family `x` in `# HELP`/`# TYPE` and its sample `x_total`, while the Prometheus format
/// names both `x_total`; a Prometheus-format parser (and `promtool check metrics`) reads the
/// OpenMetrics form as an untyped metric without help. `# UNIT` lines are dropped (a comment
/// there anyway; units are in the names).
fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len() + 256);
    let mut pending_help: Option<(&str, &str)> = None;
    let flush = |out: &mut String, help: Option<(&str, &str)>| {
        if let Some((name, text)) = help {
            let _ = writeln!(out, "# HELP {name} {text}");
        }
    };
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush(&mut out, pending_help.take());
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            pending_help = Some((name, text));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let renamed = if kind == "counter" && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            match pending_help.take() {
                Some((help_name, text)) if help_name == name => {
                    let _ = writeln!(out, "# HELP {renamed} {text}");
                }
                other => flush(&mut out, other),
            }
            let _ = writeln!(out, "# TYPE {renamed} {kind}");
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        } else {
            flush(&mut out, pending_help.take());
            out.push_str(line);
            out.push('\n');
        }
    }
    flush(&mut out, pending_help.take());
    out
}

/// `text` with this process's `node` label left out of every series, for tests that write
/// the series they expect as one daemon's.
#[cfg(test)]
pub(crate) fn without_node(text: &str) -> String {
    let node = format!("node=\"{}\"", crate::config::node());
    text.replace(&format!("{{{node},"), "{")
        .replace(&format!("{{{node}}}"), "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_cover_every_status_and_no_response() {
        assert_eq!(status_class(Some(200)), "2xx");
        assert_eq!(status_class(Some(204)), "2xx");
        assert_eq!(status_class(Some(302)), "3xx");
        assert_eq!(status_class(Some(429)), "4xx");
        assert_eq!(status_class(Some(503)), "5xx");
        assert_eq!(status_class(None), "error");
        assert_eq!(status_class(Some(99)), "error");
    }

    #[test]
    fn counters_are_named_with_total_in_help_and_type_lines() {
        let m = Metrics::default();
        m.run_finished("shop", "succeeded", Duration::from_millis(1500));
        m.vendor_retry("ct");
        let text = without_node(&m.render_recorded());
        assert!(
            text.contains("# HELP scansync_runs_total Sync runs"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE scansync_runs_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("scansync_runs_total{scan=\"shop\",outcome=\"succeeded\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("scansync_vendor_retries_total{instance=\"ct\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE scansync_run_duration_seconds histogram\n"),
            "{text}"
        );
        assert!(
            text.contains("scansync_run_duration_seconds_bucket{le=\"5.0\",scan=\"shop\"} 1\n"),
            "{text}"
        );
        assert!(
            !text.contains("# UNIT") && !text.contains("# EOF"),
            "{text}"
        );
    }

    #[test]
    fn a_configured_webhook_serves_its_delivery_series_at_zero() {
        let m = Metrics::default();
        m.webhook_configured("chat");
        m.webhook_configured("chat");
        let text = without_node(&m.render_recorded());
        for outcome in ["delivered", "retry", "gave_up"] {
            let series = format!("webhook=\"chat\",outcome=\"{outcome}\"}} 0\n");
            assert_eq!(
                text.lines()
                    .filter(|l| l.starts_with("scansync_webhook_deliveries_total{"))
                    .filter(|l| format!("{l}\n").ends_with(&series))
                    .count(),
                1,
                "{text}"
            );
        }
        // A later give-up counts from there.
        m.webhook_delivery("chat", "gave_up");
        let text = without_node(&m.render_recorded());
        assert!(
            text.contains("webhook=\"chat\",outcome=\"gave_up\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn the_ready_gauge_is_one_or_zero() {
        for (ready, value) in [(true, 1), (false, 0)] {
            let text = render_ready(ready);
            assert!(text.contains("# TYPE scansync_ready gauge\n"), "{text}");
            assert!(
                text.lines()
                    .any(|l| l.starts_with("scansync_ready") && l.ends_with(&format!(" {value}"))),
                "{text}"
            );
        }
    }

    #[test]
    fn conversion_renames_only_counter_families_and_keeps_everything_else() {
        let om = "# HELP a_seconds A help.\n# TYPE a_seconds gauge\n# UNIT a_seconds seconds\n\
                  a_seconds 1.5\n# HELP b B help with spaces.\n# TYPE b counter\n\
                  b_total{x=\"# HELP y\"} 2\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_seconds A help.\n# TYPE a_seconds gauge\na_seconds 1.5\n\
             # HELP b_total B help with spaces.\n# TYPE b_total counter\n\
             b_total{x=\"# HELP y\"} 2\n"
        );
    }

    #[test]
    fn findings_are_rendered_for_every_state_and_severity_with_zeros() {
        let snapshot = StoreSnapshot {
            findings: BTreeMap::from([
                (
                    "shop".to_string(),
                    BTreeMap::from([((FindingState::Open, Severity::High), 3)]),
                ),
                ("empty".to_string(), BTreeMap::new()),
            ]),
            last_success: BTreeMap::from([(
                "shop".to_string(),
                "2026-01-02T03:04:05.250Z".to_string(),
            )]),
            last_failure: BTreeMap::from([(
                "empty".to_string(),
                "2026-01-02T03:04:06.000Z".to_string(),
            )]),
            scan_created: BTreeMap::new(),
            outbox_depth: 2,
            outbox_oldest_pending: BTreeMap::from([(
                "chat".to_string(),
                "2026-01-02T03:00:00.000Z".to_string(),
            )]),
            acceptances_expiring_7d: BTreeMap::from([("shop".to_string(), 4)]),
        };
        let text = without_node(&render_store(&snapshot));
        let series = |scan: &str| {
            text.lines()
                .filter(|l| l.starts_with(&format!("scansync_findings{{scan=\"{scan}\"")))
                .count()
        };
        // 7 states × 5 severities.
        assert_eq!(series("shop"), 35, "{text}");
        assert_eq!(series("empty"), 35, "{text}");
        assert!(
            text.contains("scansync_findings{scan=\"shop\",state=\"open\",severity=\"high\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("scansync_findings{scan=\"shop\",state=\"fixed\",severity=\"high\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("scansync_webhook_outbox_depth 2\n"), "{text}");
        assert!(
            text.contains("scansync_acceptances_expiring_7d{scan=\"shop\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("scansync_acceptances_expiring_7d{scan=\"empty\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "scansync_last_successful_sync_timestamp_seconds{scan=\"shop\"} 1767323045.25\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "scansync_last_failed_sync_timestamp_seconds{scan=\"empty\"} 1767323046.0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "scansync_webhook_outbox_oldest_pending_timestamp_seconds{webhook=\"chat\"} 1767322800.0\n"
            ),
            "{text}"
        );
    }
}
