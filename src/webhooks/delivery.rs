//! Delivering the outbox: one signed HTTP POST per attempt, retried on a schedule until the
//! receiver answers 2xx or 24 hours have passed.
//!
//! # Attempts and retries
//! - 2xx: delivered.
//! - Any other answer, a connect error or a timeout: a failed attempt, recorded on the row
//!   (`attempts`, `last_status`, `last_error`) and retried. That includes 4xx other than 410:
//!   the usual causes (a wrong secret at the receiver, an endpoint not deployed yet, an auth
//!   proxy in the way) are fixed by a person, and then the notification should still
//!   arrive; the backoff keeps the cost of waiting small.
//! - `410 Gone`: the receiver says it wants no more notifications (the Standard Webhooks
//!   advice); the row is given up at once.
//! - Redirects: only 307/308 to the same host are followed (they keep the method and the
//!   signed body); any other redirect is a failed attempt telling the operator to fix `url`.
//! - The wait before retry `n` is drawn uniformly from `0..=min(1h, 5s * 2^n)` ("full
//!   jitter", the project's one [`RetryPolicy`]), at least 1 s; a `Retry-After` from the
//!   receiver replaces it (capped at 1 h), which also lets tests retry fast.
//! - 24 hours after the notification was written, the row is given up, with the last error
//!   in `last_error`. The last attempt is scheduled no later than that moment.
//!
//! # Who delivers
//! The daemon runs [`run_delivery_task`]: it delivers what is due, then sleeps until the next
//! due time, a run of its own finishing ([`Outbox::wake`]), or stop. Rows written by another
//! process (a `scansync sync` beside the daemon) are picked up by a re-check once a minute;
//! an idle daemon does one small indexed query a minute. One-shot commands call
//! [`deliver_before_exit`], a pass of at most [`BEFORE_EXIT_BUDGET`] that leaves whatever
//! remains for the daemon (or the next one-shot command).
//!
//! Before each attempt the row is claimed: its due time moves past the attempt's timeout.
//! Two processes never send the same row at once, and a process killed mid-attempt leaves
//! the row due again a few seconds after its timeout.
//!
//! # Secrets
//! The signing secret is only ever in a [`SigningKey`] and the config's [`Secret`]; messages
//! name the webhook and show its URL as `scheme://host:port/…` (webhook URLs often carry a
//! token in the path), and receiver text is scrubbed of the secret before it is stored.

use super::payload;
use crate::config::EventType;
use crate::config::{Config, WebhookConfig};
use crate::http::RetryPolicy;
use crate::secret::Secret;
use crate::sign::SigningKey;
use crate::store::SharedStore;
use crate::store::{OutboxMessage, StoreError};
use chrono::{DateTime, Utc};
use reqwest::Url;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// How long a notification is retried, counted from when it was written.
pub const RETRY_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Added to a webhook's timeout for the claim of a row in flight.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How often an idle daemon looks for rows written by another process.
pub const RECHECK: Duration = Duration::from_secs(60);
/// The shortest wait between two attempts of one row, whatever `Retry-After` says.
pub const MIN_RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long `scansync sync` / `scan` spend delivering before they exit.
pub const BEFORE_EXIT_BUDGET: Duration = Duration::from_secs(5);
/// Rows read per query.
const BATCH: usize = 32;
/// How much of a receiver's error answer is kept in `last_error`.
const ANSWER_SNIPPET: usize = 200;

/// The retry schedule (see the module docs).
fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: u32::MAX,
        base_delay: Duration::from_secs(5),
        max_delay: Duration::from_secs(3600),
        max_retry_after: Duration::from_secs(3600),
    }
}

/// Where one webhook's notifications go and how they are signed.
struct Target {
    url: Url,
    key: SigningKey,
    /// For scrubbing receiver text; never formatted.
    secret: Secret,
    timeout: Duration,
}

/// Every configured webhook, with one HTTP client for all of them (timeouts are set per
/// request).
struct Targets {
    client: reqwest::Client,
    by_name: BTreeMap<String, Target>,
}

impl Targets {
    /// Starts the delivery counters of these webhooks (see
    /// [`crate::metrics::Metrics::webhook_configured`]) once they are the ones in force.
    fn in_force(self: Arc<Self>) -> Arc<Self> {
        for name in self.by_name.keys() {
            crate::metrics::global().webhook_configured(name);
        }
        self
    }

    fn build(config: &Config) -> anyhow::Result<Targets> {
        let mut by_name = BTreeMap::new();
        for (name, w) in &config.webhooks {
            by_name.insert(name.clone(), target(name, w)?);
        }
        Ok(Targets {
            client: client()?,
            by_name,
        })
    }
}

fn target(name: &str, w: &WebhookConfig) -> anyhow::Result<Target> {
    let url = Url::parse(&w.url)
        .map_err(|_| anyhow::anyhow!("webhooks.{name}.url is not a valid URL"))?;
    let secret = w
        .resolved_secret
        .clone()
        .ok_or_else(|| anyhow::anyhow!("webhooks.{name}: the signing secret was not read"))?;
    let key = SigningKey::from_secret(&secret)
        .map_err(|e| anyhow::anyhow!("webhooks.{name}: the secret {e}"))?;
    Ok(Target {
        url,
        key,
        secret,
        timeout: w.timeout,
    })
}

/// The webhook client: the project's client settings (TLS verification on, user agent,
/// connect timeout) and a redirect policy of its own, see [`webhook_redirects`].
fn client() -> anyhow::Result<reqwest::Client> {
    crate::http::client_builder(Duration::from_secs(10))
        .redirect(webhook_redirects())
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the webhook HTTP client: {e}"))
}

/// Follows 307/308 on the same host only (they repeat the POST with the same signed body);
/// a redirect to another host, or one that would turn the POST into a GET, is not followed
/// and the attempt fails with the 3xx.
fn webhook_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let keeps_method = matches!(attempt.status().as_u16(), 307 | 308);
        let first = attempt.previous().first().and_then(|u| u.host_str());
        if keeps_method && attempt.previous().len() <= 3 && first == attempt.url().host_str() {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// A URL as messages show it: `scheme://host:port/…`. Webhook URLs often hold a token in the
/// path or query, so neither is ever printed.
pub fn shown_url(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    if url.path() != "/" || url.query().is_some() {
        shown.push_str("/…");
    }
    shown
}

/// `url` with no credentials, path or query, for error messages built by the HTTP layer.
fn redacted_url(url: &Url) -> Url {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_path("/");
    u.set_query(None);
    u.set_fragment(None);
    u
}

/// What delivery needs of the process: the store's writer (the outbox rows) and the
/// [`Outbox`] (targets, wake-up). Made by `SyncContext::delivery`.
#[derive(Clone)]
pub struct Delivery {
    pub store: SharedStore,
    pub outbox: Outbox,
}

/// The process's handle on webhook delivery: the configured targets (replaced on reload)
/// and the wake-up the delivery task sleeps on. Cheap to clone; clones share both.
#[derive(Clone)]
pub struct Outbox {
    wake: Arc<Notify>,
    targets: Arc<RwLock<Arc<Targets>>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field(
                "webhooks",
                &self.targets().by_name.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A rebuilt set of targets, made by [`Outbox::prepare`] and put in place by
/// [`Outbox::install`] (two steps so a reload can fail before anything changes).
pub struct PreparedTargets(Arc<Targets>);

impl Outbox {
    pub fn new(config: &Config) -> anyhow::Result<Outbox> {
        Ok(Outbox {
            wake: Arc::new(Notify::new()),
            targets: Arc::new(RwLock::new(Arc::new(Targets::build(config)?).in_force())),
        })
    }

    /// Builds the targets of a (re)loaded config without installing them.
    pub fn prepare(config: &Config) -> anyhow::Result<PreparedTargets> {
        Ok(PreparedTargets(Arc::new(Targets::build(config)?)))
    }

    /// Replaces the targets for every clone of this handle.
    pub fn install(&self, prepared: PreparedTargets) {
        *self.targets.write().unwrap_or_else(|e| e.into_inner()) = prepared.0.in_force();
    }

    /// Tells the delivery task that new rows may be due (a run just finished).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Whether any webhook is configured.
    pub fn is_configured(&self) -> bool {
        !self.targets().by_name.is_empty()
    }

    fn targets(&self) -> Arc<Targets> {
        self.targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    Delivered {
        status: u16,
    },
    Failed {
        /// `None` when no answer came.
        status: Option<u16>,
        /// Safe to log and store: no secret, no URL path.
        error: String,
        retry_after: Option<Duration>,
        /// 410 Gone: do not try again.
        permanent: bool,
    },
}

/// One signed POST of `body` as message `msg_id`.
async fn attempt(
    client: &reqwest::Client,
    target: &Target,
    msg_id: &str,
    body: &[u8],
    timeout: Duration,
) -> Attempt {
    let timestamp = Utc::now().timestamp();
    let signature = target.key.sign(msg_id, timestamp, body);
    let shown = shown_url(&target.url);
    let request = client
        .post(target.url.clone())
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", msg_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_vec());
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            // The message names the redacted URL only; the full one is scrubbed too, in case
            // a lower layer put it in its own text.
            let error = crate::http::classify(&redacted_url(&target.url), &e)
                .to_string()
                .replace(target.url.as_str(), &shown);
            return Attempt::Failed {
                status: None,
                error: scrub(&error, &target.secret),
                retry_after: None,
                permanent: false,
            };
        }
    };
    let status = response.status();
    if status.is_success() {
        return Attempt::Delivered {
            status: status.as_u16(),
        };
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::http::parse_retry_after(v, std::time::SystemTime::now()));
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| target.url.join(l).ok());
    let reason = status.canonical_reason().unwrap_or("");
    let mut error = format!("HTTP {} {reason} from {shown}", status.as_u16());
    if status.is_redirection() {
        let to = location.map(|u| shown_url(&u)).unwrap_or_default();
        error.push_str(&format!(
            ": redirect to {to} not followed (only 307/308 to the same host are); set url to the final address"
        ));
    } else {
        let answer = answer_snippet(response).await;
        if !answer.is_empty() {
            error.push_str(&format!(": {answer}"));
        }
    }
    Attempt::Failed {
        status: Some(status.as_u16()),
        error: scrub(&error, &target.secret),
        retry_after,
        permanent: status.as_u16() == 410,
    }
}

/// The start of a receiver's error answer, on one line, without control characters (it is
/// printed by `webhook pending`, and a receiver's text must not drive the terminal).
async fn answer_snippet(mut response: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < ANSWER_SNIPPET {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    one_line(&text)
}

fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .take(ANSWER_SNIPPET)
        .collect()
}

fn scrub(text: &str, secret: &Secret) -> String {
    let s = secret.expose();
    if s.is_empty() || !text.contains(s) {
        text.to_string()
    } else {
        text.replace(s, "[redacted]")
    }
}

/// What to do with a row after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AfterFailure {
    RetryAt(DateTime<Utc>),
    GiveUp(String),
}

/// The retry decision for a row written at `created` whose attempt number `attempts` (1 =
/// first) just failed at `now` (see the module docs).
fn after_failure(
    created: DateTime<Utc>,
    attempts: u32,
    now: DateTime<Utc>,
    error: &str,
    retry_after: Option<Duration>,
    permanent: bool,
) -> AfterFailure {
    if permanent {
        return AfterFailure::GiveUp(format!(
            "gave up: the receiver answered 410 Gone, asking for no more notifications ({error})"
        ));
    }
    let window = chrono::Duration::from_std(RETRY_WINDOW).expect("24 h fits");
    let give_up_at = created + window;
    if now >= give_up_at {
        return AfterFailure::GiveUp(format!(
            "gave up: not delivered within 24 h of the notification ({attempts} attempt(s)); last error: {error}"
        ));
    }
    let wait = retry_policy()
        .delay(attempts.saturating_sub(1), retry_after)
        .max(MIN_RETRY_DELAY);
    let next = now + chrono::Duration::from_std(wait).unwrap_or(window);
    AfterFailure::RetryAt(next.min(give_up_at))
}

/// Delivers (or retries, or gives up) one claimed-to-be-due row. Returns false when nothing
/// was done with it (another process holds it, or the pass ran out of time).
async fn deliver_one(
    ctx: &Delivery,
    targets: &Targets,
    message: OutboxMessage,
    deadline: Option<Instant>,
    give_up_unknown: bool,
) -> Result<bool, StoreError> {
    let Some(target) = targets.by_name.get(&message.webhook) else {
        if !give_up_unknown {
            return Ok(false);
        }
        let reason = format!(
            "gave up: webhook \"{}\" is no longer in the config",
            message.webhook
        );
        tracing::warn!(webhook = %message.webhook, msg_id = %message.msg_id, "{reason}");
        crate::metrics::global().webhook_delivery(&message.webhook, "gave_up");
        let id = message.id;
        crate::store::with_store(&ctx.store, move |s| {
            s.webhook_gave_up(id, None, &reason, Utc::now())
        })
        .await?;
        return Ok(true);
    };
    let mut timeout = target.timeout;
    if let Some(deadline) = deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < MIN_RETRY_DELAY {
            return Ok(false);
        }
        timeout = timeout.min(left);
    }
    let now = Utc::now();
    let lease = chrono::Duration::from_std(timeout + LEASE_MARGIN).unwrap_or_default();
    let claimed = {
        let m = message.clone();
        crate::store::with_store(&ctx.store, move |s| {
            s.claim_webhook_message(&m, now, now + lease)
        })
        .await?
    };
    if !claimed {
        return Ok(false);
    }
    let attempts = message.attempts + 1;
    let span = tracing::info_span!(
        "webhook",
        webhook = %message.webhook,
        msg_id = %message.msg_id,
        event = %message.event_type,
        attempt = attempts
    );
    use tracing::Instrument;
    async move {
        let outcome = attempt(
            &targets.client,
            target,
            &message.msg_id,
            message.payload.as_bytes(),
            timeout,
        )
        .await;
        record(ctx, &message, attempts, now, outcome).await?;
        Ok(true)
    }
    .instrument(span)
    .await
}

/// Writes an attempt's outcome to the row, logs it and counts it.
async fn record(
    ctx: &Delivery,
    message: &OutboxMessage,
    attempts: u32,
    started: DateTime<Utc>,
    outcome: Attempt,
) -> Result<(), StoreError> {
    let id = message.id;
    let metrics = crate::metrics::global();
    match outcome {
        Attempt::Delivered { status } => {
            tracing::info!(status, "webhook delivered");
            metrics.webhook_delivery(&message.webhook, "delivered");
            crate::store::with_store(&ctx.store, move |s| {
                s.webhook_delivered(id, status, Utc::now())
            })
            .await
        }
        Attempt::Failed {
            status,
            error,
            retry_after,
            permanent,
        } => {
            let created = DateTime::parse_from_rfc3339(&message.created_at)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(started);
            match after_failure(
                created,
                attempts,
                Utc::now(),
                &error,
                retry_after,
                permanent,
            ) {
                AfterFailure::RetryAt(next) => {
                    tracing::warn!(
                        status,
                        error = %error,
                        next_attempt = %next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "webhook delivery failed; will retry"
                    );
                    metrics.webhook_delivery(&message.webhook, "retry");
                    crate::store::with_store(&ctx.store, move |s| {
                        s.webhook_retry(id, status, &error, next)
                    })
                    .await
                }
                AfterFailure::GiveUp(reason) => {
                    tracing::error!(status, "webhook delivery {reason}");
                    metrics.webhook_delivery(&message.webhook, "gave_up");
                    crate::store::with_store(&ctx.store, move |s| {
                        s.webhook_gave_up(id, status, &reason, Utc::now())
                    })
                    .await
                }
            }
        }
    }
}

/// Delivers every row due now, webhook by webhook in parallel (each webhook's rows in
/// order), until none is due, `deadline` comes, or `stop` is set.
async fn pass(
    ctx: &Delivery,
    deadline: Option<Instant>,
    stop: &watch::Receiver<bool>,
    give_up_unknown: bool,
) -> Result<(), StoreError> {
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let due =
            crate::store::with_store(&ctx.store, |s| s.due_webhook_messages(Utc::now(), BATCH))
                .await?;
        if due.is_empty() {
            return Ok(());
        }
        let targets = ctx.outbox.targets();
        let mut by_webhook: BTreeMap<String, Vec<OutboxMessage>> = BTreeMap::new();
        for m in due {
            by_webhook.entry(m.webhook.clone()).or_default().push(m);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (_, messages) in by_webhook {
            let (ctx, targets, stop) = (ctx.clone(), targets.clone(), stop.clone());
            tasks.spawn(async move {
                let mut acted = false;
                for m in messages {
                    if *stop.borrow() {
                        break;
                    }
                    acted |= deliver_one(&ctx, &targets, m, deadline, give_up_unknown).await?;
                }
                Ok::<bool, StoreError>(acted)
            });
        }
        let mut acted = false;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(result) => acted |= result?,
                Err(e) => return Err(StoreError::Invalid(format!("webhook task failed: {e}"))),
            }
        }
        // Nothing could be done with what is due (held by another process, out of time, or
        // for a webhook this process does not know): asking again would only spin.
        if !acted {
            return Ok(());
        }
    }
}

/// The daemon's delivery task: runs until `stop` is set (see the module docs). Store errors
/// are logged and retried after a pause; they never end the task.
pub async fn run_delivery_task(ctx: Delivery, mut stop: watch::Receiver<bool>) {
    let wake = ctx.outbox.wake.clone();
    loop {
        if *stop.borrow() {
            break;
        }
        let mut wait = RECHECK;
        match pass(&ctx, None, &stop, true).await {
            Ok(()) => {
                if let Ok(Some(next)) =
                    crate::store::with_store(&ctx.store, |s| s.next_webhook_due()).await
                {
                    let until = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                    wait = until.min(RECHECK);
                }
            }
            Err(e) => {
                tracing::error!("webhook delivery: {e}; trying again shortly");
                wait = Duration::from_secs(5);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

/// What [`deliver_before_exit`] left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeftPending(pub u64);

/// The one-shot commands' delivery: at most [`BEFORE_EXIT_BUDGET`] spent delivering what is
/// due (waiting for a retry only when it falls inside the budget). Whatever is still pending
/// stays in the outbox for the daemon or the next one-shot command; never an error for the
/// command itself.
pub async fn deliver_before_exit(ctx: &Delivery) -> LeftPending {
    if !ctx.outbox.is_configured() {
        return LeftPending(0);
    }
    let deadline = Instant::now() + BEFORE_EXIT_BUDGET;
    let (_never_stop, stop) = watch::channel(false);
    loop {
        if let Err(e) = pass(ctx, Some(deadline), &stop, false).await {
            tracing::warn!("webhook delivery: {e}");
            break;
        }
        let next = match crate::store::with_store(&ctx.store, |s| s.next_webhook_due()).await {
            Ok(Some(next)) => next,
            _ => break,
        };
        let Ok(wait) = (next - Utc::now()).to_std() else {
            // Still due right after a pass: held by another process or for a webhook of
            // another config; not ours to wait for.
            break;
        };
        if Instant::now() + wait + MIN_RETRY_DELAY > deadline {
            break;
        }
        tokio::time::sleep(wait).await;
    }
    let left = crate::store::with_store(&ctx.store, |s| s.outbox_depth())
        .await
        .unwrap_or(0);
    if left > 0 {
        tracing::warn!(
            "{left} webhook notification(s) not delivered yet; the daemon (scansync run) retries them, `scansync webhook pending` lists them"
        );
    }
    LeftPending(left)
}

/// What `scansync webhook test` got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingOutcome {
    pub msg_id: String,
    /// The HTTP status, when the receiver answered.
    pub status: Option<u16>,
    /// `200 OK`, or what went wrong (safe to print).
    pub detail: String,
}

impl PingOutcome {
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends one signed `ping` notification to webhook `name` (not through the outbox: nothing
/// is stored, nothing retried).
pub async fn send_ping(config: &Config, name: &str) -> anyhow::Result<PingOutcome> {
    let w = config.webhooks.get(name).ok_or_else(|| {
        let known: Vec<&str> = config.webhooks.keys().map(String::as_str).collect();
        anyhow::anyhow!(
            "no webhook named \"{name}\" in the config ({})",
            if known.is_empty() {
                "none is defined; add a [webhooks.NAME] table".to_string()
            } else {
                format!("defined: {}", known.join(", "))
            }
        )
    })?;
    let target = target(name, w)?;
    let client = client()?;
    let msg_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = payload::ping(name, &at).to_string();
    debug_assert_eq!(EventType::Ping.as_str(), "ping");
    Ok(
        match attempt(&client, &target, &msg_id, body.as_bytes(), target.timeout).await {
            Attempt::Delivered { status } => PingOutcome {
                msg_id,
                status: Some(status),
                detail: status_text(status),
            },
            Attempt::Failed { status, error, .. } => PingOutcome {
                msg_id,
                status,
                detail: error,
            },
        },
    )
}

fn status_text(status: u16) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("{status} {reason}").trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn urls_are_shown_without_path_or_query() {
        let u = Url::parse("https://hooks.example.com/services/T0/B0/s3cr3t?x=1").unwrap();
        assert_eq!(shown_url(&u), "https://hooks.example.com/…");
        let u = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(shown_url(&u), "http://127.0.0.1:8080");
    }

    #[test]
    fn a_failure_is_retried_with_backoff_of_at_least_a_second() {
        let created = t("2026-03-01T00:00:00Z");
        for attempts in 1..20 {
            let now = created + chrono::Duration::minutes(attempts as i64);
            match after_failure(created, attempts, now, "HTTP 503", None, false) {
                AfterFailure::RetryAt(next) => {
                    let wait = (next - now).to_std().unwrap();
                    let ceiling = retry_policy().backoff_ceiling(attempts - 1);
                    assert!(wait >= MIN_RETRY_DELAY, "{wait:?}");
                    assert!(
                        wait <= ceiling.max(MIN_RETRY_DELAY),
                        "{wait:?} > {ceiling:?}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn the_backoff_is_uniform_over_its_window_with_a_floor_of_a_second() {
        let created = t("2026-03-01T00:00:00Z");
        let now = created + chrono::Duration::minutes(5);
        // The fifth attempt's ceiling: 5 s doubled four times.
        let ceiling = retry_policy().backoff_ceiling(4);
        assert_eq!(ceiling, Duration::from_secs(80));
        let waits: Vec<u64> = (0..20_000)
            .map(
                |_| match after_failure(created, 5, now, "HTTP 503", None, false) {
                    AfterFailure::RetryAt(next) => (next - now).num_milliseconds() as u64,
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        // Draws under a second wait a second; 1/80 of them do, so the floor is reached.
        assert_eq!(
            *waits.iter().min().unwrap(),
            MIN_RETRY_DELAY.as_millis() as u64
        );
        crate::schedule::assert_uniform_ms(&waits, 0, ceiling.as_millis() as u64);
    }

    #[test]
    fn retry_after_replaces_the_backoff_but_is_capped() {
        let created = t("2026-03-01T00:00:00Z");
        let now = created;
        assert_eq!(
            after_failure(created, 9, now, "e", Some(Duration::from_secs(2)), false),
            AfterFailure::RetryAt(now + chrono::Duration::seconds(2))
        );
        assert_eq!(
            after_failure(created, 1, now, "e", Some(Duration::ZERO), false),
            AfterFailure::RetryAt(now + chrono::Duration::seconds(1)),
            "Retry-After: 0 still waits a second"
        );
        assert_eq!(
            after_failure(
                created,
                1,
                now,
                "e",
                Some(Duration::from_secs(86_400)),
                false
            ),
            AfterFailure::RetryAt(now + chrono::Duration::hours(1))
        );
    }

    #[test]
    fn the_last_retry_is_at_the_end_of_the_window_and_then_it_gives_up() {
        let created = t("2026-03-01T00:00:00Z");
        let near_end = created + chrono::Duration::hours(24) - chrono::Duration::seconds(2);
        assert_eq!(
            after_failure(
                created,
                30,
                near_end,
                "e",
                Some(Duration::from_secs(600)),
                false
            ),
            AfterFailure::RetryAt(created + chrono::Duration::hours(24))
        );
        match after_failure(
            created,
            31,
            created + chrono::Duration::hours(24),
            "HTTP 500 Internal Server Error from https://x/…",
            None,
            false,
        ) {
            AfterFailure::GiveUp(reason) => {
                assert!(reason.contains("within 24 h"), "{reason}");
                assert!(reason.contains("31 attempt(s)"), "{reason}");
                assert!(reason.contains("HTTP 500"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gone_gives_up_at_once() {
        let created = t("2026-03-01T00:00:00Z");
        match after_failure(created, 1, created, "HTTP 410 Gone", None, true) {
            AfterFailure::GiveUp(reason) => assert!(reason.contains("410"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn receiver_text_is_one_line_without_control_characters() {
        assert_eq!(
            one_line("bad\n  signature\x1b[31m red\x07"),
            "bad signature[31m red"
        );
        assert_eq!(one_line(&"x".repeat(500)).len(), ANSWER_SNIPPET);
    }

    #[test]
    fn receiver_text_is_scrubbed_of_the_secret() {
        let secret = Secret::new("s3cr3t-value");
        assert_eq!(
            scrub("bad signature for s3cr3t-value", &secret),
            "bad signature for [redacted]"
        );
    }
}
