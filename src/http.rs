//! The one place that builds HTTP clients: TLS, CA, proxy, timeouts, retries, redaction.
//!
//! Connectors describe requests as "path + query pairs" relative to the instance's base URL and
//! get back either a successful, fully read (size-capped) response or an [`HttpError`] already
//! sorted by cause, so each connector only decides what a cause means for its vendor.
//!
//! Secrets: the token travels only in a header marked sensitive; headers are never logged and
//! [`HttpClient`]'s `Debug` prints header names only. Proxy URLs may carry credentials, so they
//! are never put into a message either.

use crate::config::InstanceConfig;
use crate::secret::Secret;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Sent on every request so vendor operators can tell scansync's traffic apart.
pub const USER_AGENT: &str = concat!("scansync/", env!("CARGO_PKG_VERSION"));
/// A TCP + TLS handshake that takes longer than this is a network problem, not a slow API.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Whole-request timeout when the instance does not set `timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest body scansync reads; a finding page is far below this, so more means a broken server.
pub const DEFAULT_BODY_CAP: usize = 64 * 1024 * 1024;
/// How much of an error body is kept for messages.
const SNIPPET_CHARS: usize = 300;
/// How much of an error body is kept for connectors to inspect.
const ERROR_BODY_KEPT: usize = 4096;

/// What the HTTP layer reports; connectors turn it into a [`crate::vendors::VendorError`].
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The instance settings cannot make a client (unreadable `ca_file`, bad proxy, bad URL).
    #[error("invalid HTTP client settings: {0}")]
    Setup(String),
    /// The server answered with a non-success status (after retries, where they apply).
    #[error("HTTP {status} from {url}{}", snippet_suffix(.snippet))]
    Status {
        url: String,
        status: u16,
        /// Boxed: a header map is large and errors travel through every `Result`.
        headers: Box<HeaderMap>,
        /// The start of the body, for messages (vendors put their reason there).
        snippet: String,
        /// The first bytes of the body, so a connector can tell a vendor's JSON error from a
        /// proxy's HTML page.
        body: bytes::Bytes,
    },
    /// TLS handshake or certificate verification failed.
    #[error("TLS failure talking to {url}: {detail}")]
    Tls { url: String, detail: String },
    /// The host name does not resolve.
    #[error("cannot resolve the host of {url}: {detail}")]
    Dns { url: String, detail: String },
    /// Connection refused or unreachable: the request never reached the server.
    #[error("cannot connect to {url}: {detail}")]
    Connect { url: String, detail: String },
    /// The connection broke after the request was sent (reset, closed mid-body).
    #[error("connection to {url} broke: {detail}")]
    Interrupted { url: String, detail: String },
    /// Connect or request timeout.
    #[error("timed out talking to {url}")]
    Timeout { url: String },
    /// The body exceeded the cap.
    #[error("response from {url} is larger than {limit} bytes")]
    BodyTooLarge { url: String, limit: usize },
    /// The body could not be read or decoded (gzip, broken stream).
    #[error("cannot read the response from {url}: {detail}")]
    Decode { url: String, detail: String },
}

fn snippet_suffix(snippet: &str) -> String {
    if snippet.is_empty() {
        String::new()
    } else {
        format!(": {snippet}")
    }
}

impl HttpError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Connect errors, timeouts, 429 and 5xx are worth another attempt; anything else
    /// (4xx, TLS, DNS, a bad body) will fail the same way again.
    ///
    /// A request that is not idempotent (starting a scan) may already have taken effect after
    /// a timeout, a broken connection or a 500, and repeating it would start a second scan;
    /// it is retried only when the server cannot have acted on it: no connection, 429, 503.
    fn is_retryable(&self, idempotent: bool) -> bool {
        match self {
            HttpError::Connect { .. } => true,
            HttpError::Timeout { .. } | HttpError::Interrupted { .. } => idempotent,
            HttpError::Status { status, .. } => {
                matches!(status, 429 | 503) || (idempotent && (500..600).contains(status))
            }
            _ => false,
        }
    }
}

/// Bounded retries with exponential backoff and full jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    /// Backoff before the first retry is drawn from `0..=base_delay`, then doubles.
    pub base_delay: Duration,
    /// Largest computed backoff.
    pub max_delay: Duration,
    /// Largest wait honoured from a `Retry-After` header; a server asking for more is asked
    /// again sooner rather than stalling a run for hours.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Upper bound of the backoff before retry number `retry` (0 = first retry):
    /// `min(max_delay, base_delay * 2^retry)`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// "Full jitter" backoff: uniformly random in `0..=ceiling`, which spreads many clients
    /// retrying against one recovering server.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.backoff_ceiling(retry).as_millis() as u64;
        Duration::from_millis(fastrand::u64(0..=ceiling))
    }

    /// The wait before the next attempt: the server's `Retry-After` when it gave one
    /// (capped), else the jittered backoff.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(d) => d.min(self.max_retry_after),
            None => self.backoff(retry),
        }
    }
}

/// Parses `Retry-After`: delay seconds or an HTTP date (RFC 9110 §10.2.3). A date in the past
/// means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // RFC 9110's HTTP-date in all three of its forms (IMF-fixdate, RFC 850, asctime), as
    // `httpdate` reads them; RFC 2822 is a different grammar that accepts other zones.
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Retry numbers a later metrics endpoint can read.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    retry_wait_ms: AtomicU64,
}

/// A successful response, body read in full (within the cap).
#[derive(Debug)]
pub struct HttpResponse {
    pub url: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl HttpResponse {
    /// A header as text, if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// True when the server says the body is HTML: a login page, a proxy's error page or a
    /// single-page app's catch-all, never a vendor API answer.
    pub fn is_html(&self) -> bool {
        looks_like_html(&self.headers, &self.body)
    }
}

/// Whether a body is an HTML page rather than an API answer.
pub fn looks_like_html(headers: &HeaderMap, body: &[u8]) -> bool {
    let by_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().contains("text/html"));
    let start = String::from_utf8_lossy(&body[..body.len().min(64)]).to_ascii_lowercase();
    by_type || start.trim_start().starts_with("<!doctype html") || start.contains("<html")
}

/// The settings every scansync client starts from: user agent, connect timeout, the
/// whole-request `timeout`, and TLS verification on (rustls with the system's roots).
/// [`HttpClient::for_instance`] adds an instance's CA, proxy and redirect policy; the webhook
/// sender ([`crate::webhooks::delivery`]) adds its own redirect policy.
pub fn client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
}

/// A client bound to one instance's base URL (path prefix included), with its token header
/// redaction, timeouts and retry policy.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    /// Without trailing slash; paths are appended to it.
    base: String,
    headers: HeaderMap,
    retry: RetryPolicy,
    body_cap: usize,
    counters: Arc<Counters>,
    /// Secret header values, scrubbed from error bodies in case a server echoes them.
    secrets: Vec<Secret>,
    /// The instance name the metrics file this client's requests under; `None` records
    /// nothing (a client that is not a vendor instance's).
    metrics_label: Option<Arc<str>>,
    /// The process's stop flag: a wait between retries ends at once when it turns true, and
    /// the request returns its last error instead of retrying. `None`: waits run out.
    stop: Option<tokio::sync::watch::Receiver<bool>>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("base", &self.base)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("retry", &self.retry)
            .field("body_cap", &self.body_cap)
            .field("metrics_label", &self.metrics_label)
            .finish()
    }
}

impl HttpClient {
    /// Builds the client for an instance: base URL (`url`; vendors without one set theirs via
    /// [`HttpClient::with_base_url`]), timeouts, `insecure`, `ca_file`, `proxy`.
    pub fn for_instance(instance: &InstanceConfig) -> Result<HttpClient, HttpError> {
        let mut builder = client_builder(instance.timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT))
            .gzip(true)
            .redirect(same_host_redirects());
        if instance.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if let Some(path) = &instance.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                HttpError::Setup(format!("cannot read ca_file {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                HttpError::Setup(format!(
                    "ca_file {} is not a PEM certificate bundle: {e}",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(HttpError::Setup(format!(
                    "ca_file {} holds no PEM certificate",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(proxy) = &instance.proxy {
            // The proxy URL may hold user:password; the message names the setting only.
            let proxy = reqwest::Proxy::all(proxy).map_err(|_| {
                HttpError::Setup("proxy is not a valid proxy URL (http://host:port)".to_string())
            })?;
            builder = builder.proxy(proxy);
        }
        let inner = builder
            .build()
            .map_err(|e| HttpError::Setup(format!("cannot build the HTTP client: {e}")))?;
        let client = HttpClient {
            inner,
            base: String::new(),
            headers: HeaderMap::new(),
            retry: RetryPolicy::default(),
            body_cap: DEFAULT_BODY_CAP,
            counters: Arc::default(),
            secrets: Vec::new(),
            metrics_label: None,
            stop: None,
        };
        match &instance.url {
            Some(url) => client.with_base_url(url),
            None => Ok(client),
        }
    }

    /// Sets the base URL (any path prefix is kept).
    pub fn with_base_url(mut self, url: &str) -> Result<HttpClient, HttpError> {
        let parsed = Url::parse(url)
            .map_err(|e| HttpError::Setup(format!("url \"{url}\" is not a valid URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(HttpError::Setup(format!(
                "url \"{url}\" must start with https:// (or http://)"
            )));
        }
        self.base = url.trim_end_matches('/').to_string();
        Ok(self)
    }

    /// Adds a header sent on every request.
    pub fn with_header(mut self, name: &'static str, value: &str) -> Result<Self, HttpError> {
        let value = HeaderValue::from_str(value)
            .map_err(|_| HttpError::Setup(format!("invalid value for header {name}")))?;
        self.headers.insert(HeaderName::from_static(name), value);
        Ok(self)
    }

    /// Adds a header carrying a secret (`Authorization: Bearer …`), marked sensitive so the
    /// HTTP stack never prints it either.
    pub fn with_secret_header(
        mut self,
        name: &'static str,
        prefix: &str,
        secret: &Secret,
    ) -> Result<Self, HttpError> {
        let mut value =
            HeaderValue::from_str(&format!("{prefix}{}", secret.expose())).map_err(|_| {
                HttpError::Setup(format!(
                    "the token holds characters not allowed in the {name} header (a stray newline?)"
                ))
            })?;
        value.set_sensitive(true);
        self.headers.insert(HeaderName::from_static(name), value);
        self.secrets.push(secret.clone());
        Ok(self)
    }

    /// Names the instance this client talks to, so each attempt and retry is counted in
    /// the metrics under it (`scansync_vendor_requests_total{instance=…}`).
    pub fn with_metrics_label(mut self, instance: &str) -> Self {
        self.metrics_label = Some(Arc::from(instance));
        self
    }

    /// Replaces the retry policy (tests use tiny delays).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Replaces the body size cap.
    pub fn with_body_cap(mut self, bytes: usize) -> Self {
        self.body_cap = bytes;
        self
    }

    /// The base URL, without trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Requests sent (attempts, retries included) by this client and its clones.
    pub fn requests_total(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    /// Retries made by this client and its clones.
    pub fn retries_total(&self) -> u64 {
        self.counters.retries.load(Ordering::Relaxed)
    }

    /// Time spent waiting between attempts, in milliseconds.
    pub fn retry_wait_total_ms(&self) -> u64 {
        self.counters.retry_wait_ms.load(Ordering::Relaxed)
    }

    /// The full URL for a path (starting with `/`) and query pairs, encoded.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, HttpError> {
        let mut url = Url::parse(&format!("{}{path}", self.base)).map_err(|e| {
            HttpError::Setup(format!(
                "cannot build a URL from base \"{}\" and path {path}: {e}",
                self.base
            ))
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// `GET base+path?query`.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<HttpResponse, HttpError> {
        let url = self.url(path, query)?;
        self.send(Method::GET, url, None).await
    }

    /// `POST base+path` with a JSON body.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<HttpResponse, HttpError> {
        let url = self.url(path, &[])?;
        let body = serde_json::to_vec(body)
            .map_err(|e| HttpError::Setup(format!("cannot encode the request body: {e}")))?;
        self.send(Method::POST, url, Some(body)).await
    }

    /// Ends the waits between retries as soon as `stop` turns true (the sync's stop flag):
    /// the request then returns its last error rather than sleeping out a backoff or a
    /// server's `Retry-After` while the process is asked to stop.
    pub fn with_stop(mut self, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Sends with retries (a body goes out as JSON); returns the first success or the last
    /// error (at once, without retrying, when the stop flag of [`HttpClient::with_stop`] is
    /// set).
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, HttpError> {
        let mut retry = 0u32;
        loop {
            let started = Instant::now();
            let result = self
                .attempt(method.clone(), url.clone(), body.clone())
                .await;
            if let Some(instance) = &self.metrics_label {
                let status = match &result {
                    Ok(resp) => Some(resp.status),
                    Err(e) => e.status(),
                };
                crate::metrics::global().vendor_request(instance, status, started.elapsed());
            }
            let err = match result {
                Ok(resp) => return Ok(resp),
                Err(e) => e,
            };
            if !err.is_retryable(method.is_idempotent()) || retry + 1 >= self.retry.max_attempts {
                return Err(err);
            }
            let retry_after = match &err {
                HttpError::Status { headers, .. } => headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now())),
                _ => None,
            };
            let wait = self.retry.delay(retry, retry_after);
            tracing::debug!(%method, %url, error = %err, wait_ms = wait.as_millis() as u64, "retrying");
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            if let Some(instance) = &self.metrics_label {
                crate::metrics::global().vendor_retry(instance);
            }
            self.counters
                .retry_wait_ms
                .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
            if !self.wait_unless_stopped(wait).await {
                tracing::debug!(%method, %url, "not retrying: asked to stop");
                return Err(err);
            }
            retry += 1;
        }
    }

    /// Sleeps `wait`; false (at once) when the stop flag is or becomes set first.
    async fn wait_unless_stopped(&self, wait: Duration) -> bool {
        let Some(mut stop) = self.stop.clone() else {
            tokio::time::sleep(wait).await;
            return true;
        };
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }

    async fn attempt(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, HttpError> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = self
            .inner
            .request(method.clone(), url.clone())
            .headers(self.headers.clone());
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let err = classify(&url, &e);
                tracing::debug!(%method, %url, error = %err, "request failed");
                return Err(err);
            }
        };
        let status = resp.status();
        tracing::debug!(%method, %url, status = status.as_u16(), "response");
        let headers = resp.headers().clone();
        let body = read_capped(resp, &url, self.body_cap).await?;
        if status.is_success() {
            Ok(HttpResponse {
                url: url.to_string(),
                status: status.as_u16(),
                headers,
                body,
            })
        } else {
            Err(HttpError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                snippet: self.scrub(snippet(status, &headers, &body)),
                headers: Box::new(headers),
                body: self
                    .scrub(
                        String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_KEPT)])
                            .into_owned(),
                    )
                    .into(),
            })
        }
    }
}

impl HttpClient {
    /// Replaces any secret this client sends with `[redacted]`.
    fn scrub(&self, mut text: String) -> String {
        for secret in &self.secrets {
            if !secret.expose().is_empty() && text.contains(secret.expose()) {
                text = text.replace(secret.expose(), "[redacted]");
            }
        }
        text
    }
}

/// Follows redirects on the same host only: a redirect elsewhere is a misconfigured URL (or a
/// login page), and following it would at best give confusing errors.
fn same_host_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().and_then(|u| u.host_str());
        if attempt.previous().len() > 5 || first != attempt.url().host_str() {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

/// Reads the body chunk by chunk so an oversized one is refused without holding it all.
async fn read_capped(
    mut resp: reqwest::Response,
    url: &Url,
    cap: usize,
) -> Result<bytes::Bytes, HttpError> {
    let too_large = || HttpError::BodyTooLarge {
        url: url.to_string(),
        limit: cap,
    };
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let mut buf = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > cap {
                    return Err(too_large());
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.into()),
            Err(e) if e.is_timeout() => {
                return Err(HttpError::Timeout {
                    url: url.to_string(),
                })
            }
            Err(e) if e.is_decode() => {
                return Err(HttpError::Decode {
                    url: url.to_string(),
                    detail: chain_text(&e),
                })
            }
            Err(e) => {
                return Err(HttpError::Interrupted {
                    url: url.to_string(),
                    detail: chain_text(&e),
                })
            }
        }
    }
}

/// The start of an error body for messages: the vendor's `message` field when the body is
/// JSON, else the first characters of the text; HTML pages are summarized, not dumped.
/// The part of an error answer worth quoting, with control characters escaped: it goes into
/// error messages, the run row and log lines, none of which may carry a vendor's (or a
/// proxy's) escape sequences to an operator's terminal.
fn snippet(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> String {
    crate::display::clean(&raw_snippet(status, headers, body)).into_owned()
}

fn raw_snippet(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> String {
    if looks_like_html(headers, body) {
        return "an HTML page, not an API answer".to_string();
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
            return truncate(m);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status.canonical_reason().unwrap_or("").to_string()
    } else {
        truncate(text)
    }
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(SNIPPET_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Every message in an error's source chain, joined; rustls and hyper put the useful part
/// deep inside.
fn chain_text(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        // io::Error hides a custom inner error from `source()`; look inside it too.
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) if inner.to_string() != err.to_string() => Some(inner),
            _ => err.source(),
        };
    }
    parts.join(": ")
}

/// Sorts a transport error by cause, from its source chain. `url` is only used in the
/// message, so a caller may pass a redacted one.
pub(crate) fn classify(url: &Url, e: &reqwest::Error) -> HttpError {
    let url_text = url.to_string();
    // The reqwest message repeats the URL; the chain below it says what happened.
    let detail = e.source().map(chain_text).unwrap_or_else(|| e.to_string());
    let lower = detail.to_ascii_lowercase();
    if is_tls(e) || lower.contains("certificate") || lower.contains("tls") {
        return HttpError::Tls {
            url: url_text,
            detail,
        };
    }
    if e.is_timeout() || lower.contains("timed out") {
        return HttpError::Timeout { url: url_text };
    }
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        return HttpError::Dns {
            url: url_text,
            detail,
        };
    }
    if e.is_builder() {
        return HttpError::Setup(detail);
    }
    if e.is_connect() {
        return HttpError::Connect {
            url: url_text,
            detail,
        };
    }
    if e.is_request() || e.is_body() {
        return HttpError::Interrupted {
            url: url_text,
            detail,
        };
    }
    HttpError::Decode {
        url: url_text,
        detail,
    }
}

/// True when a rustls error sits anywhere in the chain (also inside an `io::Error`).
fn is_tls(e: &reqwest::Error) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if inner.is::<rustls::Error>() {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_are_read_as_a_delay() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_http_date_is_the_time_until_that_date() {
        let now =
            SystemTime::from(chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z").unwrap());
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        // A date in the past means "retry now".
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_reads_every_http_date_form_and_refuses_other_dates() {
        let now =
            SystemTime::from(chrono::DateTime::parse_from_rfc3339("1994-11-06T08:49:00Z").unwrap());
        // RFC 9110 §5.6.7: IMF-fixdate, the obsolete RFC 850 form and asctime.
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(date, now),
                Some(Duration::from_secs(37)),
                "{date}"
            );
        }
        // Not HTTP dates: a numeric zone (RFC 2822), ISO 8601.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 +0000", now),
            None
        );
        assert_eq!(parse_retry_after("1994-11-06T08:49:37Z", now), None);
    }

    /// A loopback server answering every request with 503 and `Retry-After: 3600`, counting
    /// the requests.
    async fn unavailable_server() -> (String, Arc<AtomicU64>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicU64::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let _ = tcp
                        .write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 3600\r\n\
                              content-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        (url, hits)
    }

    #[tokio::test]
    async fn a_retry_wait_ends_at_once_on_stop_and_returns_the_last_error() {
        let (url, hits) = unavailable_server().await;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let client = HttpClient::for_instance(&InstanceConfig::default())
            .unwrap()
            .with_base_url(&url)
            .unwrap()
            .with_stop(stop_rx);
        let request = tokio::spawn(async move { client.get("/x", &[]).await });
        // Stop once the first answer is in: the client is then in its hour-long wait.
        while hits.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        stop_tx.send(true).unwrap();
        // Far shorter than the hour the server asked for: only stop can end the wait.
        let result = tokio::time::timeout(Duration::from_secs(30), request)
            .await
            .expect("the retry wait ended on stop")
            .unwrap();
        assert_eq!(result.unwrap_err().status(), Some(503));
        assert_eq!(hits.load(Ordering::SeqCst), 1, "no retry after stop");
    }

    #[tokio::test]
    async fn a_stop_set_before_the_request_still_lets_one_attempt_through() {
        let (url, hits) = unavailable_server().await;
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(true);
        let client = HttpClient::for_instance(&InstanceConfig::default())
            .unwrap()
            .with_base_url(&url)
            .unwrap()
            .with_stop(stop_rx);
        let err = client.get("/x", &[]).await.unwrap_err();
        assert_eq!(err.status(), Some(503));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn retry_after_garbage_is_ignored() {
        assert_eq!(parse_retry_after("soon", SystemTime::now()), None);
        assert_eq!(parse_retry_after("-3", SystemTime::now()), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_below_the_ceiling() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_ceiling(0), Duration::from_millis(500));
        assert_eq!(p.backoff_ceiling(1), Duration::from_millis(1000));
        assert_eq!(p.backoff_ceiling(3), Duration::from_millis(4000));
        assert_eq!(p.backoff_ceiling(10), Duration::from_secs(30));
        assert_eq!(p.backoff_ceiling(200), Duration::from_secs(30));
        // Full jitter: uniform over 0..=ceiling at each retry, not just under it.
        for retry in [0, 3, 10] {
            let ceiling = p.backoff_ceiling(retry).as_millis() as u64;
            let samples: Vec<u64> = (0..20_000)
                .map(|_| p.backoff(retry).as_millis() as u64)
                .collect();
            crate::schedule::assert_uniform_ms(&samples, 0, ceiling);
        }
    }

    #[test]
    fn retry_after_is_honoured_but_capped() {
        let p = RetryPolicy {
            max_retry_after: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn only_transient_failures_are_retried_for_reads() {
        let status = |s: u16| HttpError::Status {
            url: "u".into(),
            status: s,
            headers: Box::default(),
            snippet: String::new(),
            body: Default::default(),
        };
        assert!(status(429).is_retryable(true));
        assert!(status(500).is_retryable(true));
        assert!(status(503).is_retryable(true));
        assert!(!status(404).is_retryable(true));
        assert!(!status(401).is_retryable(true));
        assert!(HttpError::Timeout { url: "u".into() }.is_retryable(true));
        assert!(!HttpError::Tls {
            url: "u".into(),
            detail: "x".into()
        }
        .is_retryable(true));
    }

    #[test]
    fn a_scan_start_is_not_repeated_when_the_server_may_have_acted_on_it() {
        let status = |s: u16| HttpError::Status {
            url: "u".into(),
            status: s,
            headers: Box::default(),
            snippet: String::new(),
            body: Default::default(),
        };
        assert!(!status(500).is_retryable(false));
        assert!(!HttpError::Timeout { url: "u".into() }.is_retryable(false));
        assert!(status(429).is_retryable(false));
        assert!(status(503).is_retryable(false));
        assert!(HttpError::Connect {
            url: "u".into(),
            detail: "refused".into()
        }
        .is_retryable(false));
    }

    #[test]
    fn html_bodies_are_recognized() {
        let mut h = HeaderMap::new();
        assert!(looks_like_html(&h, b"<!DOCTYPE html><html>"));
        assert!(!looks_like_html(&h, b"[{\"a\":1}]"));
        h.insert(
            "content-type",
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        assert!(looks_like_html(&h, b""));
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let instance = InstanceConfig {
            vendor: "codethreat".into(),
            url: Some("https://example.invalid/prefix/".into()),
            proxy: Some("http://user:pa55word@proxy.invalid:3128".into()),
            ..Default::default()
        };
        let client = HttpClient::for_instance(&instance)
            .unwrap()
            .with_secret_header("authorization", "Bearer ", &Secret::new("tok-SECRET-1"))
            .unwrap();
        let dbg = format!("{client:?}");
        assert!(!dbg.contains("tok-SECRET-1"), "{dbg}");
        assert!(!dbg.contains("pa55word"), "{dbg}");
        assert_eq!(client.base_url(), "https://example.invalid/prefix");
        assert_eq!(
            client.url("/api/x", &[("q", "a b")]).unwrap().as_str(),
            "https://example.invalid/prefix/api/x?q=a+b"
        );
    }
}
