//! Vendors behind one trait. A new vendor is one file here plus one line in [`REGISTRY`].
//!
//! Connectors speak HTTP and hand back normalized [`Finding`]s; they never touch the store.

use crate::config::InstanceConfig;
use crate::finding::Finding;
use crate::http::HttpClient;
use async_trait::async_trait;
use std::collections::BTreeMap;

pub mod codethreat;
pub mod saltsecurity;

/// What can go wrong talking to a vendor, sorted by what the user should do about it.
/// `test-connection` maps each kind to its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum VendorError {
    /// 401/403: the token is wrong, expired or lacks permission.
    #[error("{vendor} rejected the token at {url}: HTTP {status}; {hint}")]
    TokenRejected {
        vendor: &'static str,
        url: String,
        status: u16,
        hint: &'static str,
    },
    /// The token is fine but the organization/tenant is unknown or not permitted.
    #[error("{vendor} at {url} does not know or permit organization \"{organization}\" (HTTP {status}); check that the organization name matches exactly, including case")]
    OrganizationRejected {
        vendor: &'static str,
        url: String,
        organization: String,
        status: u16,
    },
    /// The bound project/asset does not exist.
    #[error("{vendor} has no project or asset named \"{}\" at {url}", crate::display::clean(.name))]
    TargetNotFound {
        vendor: &'static str,
        url: String,
        name: String,
    },
    /// Not the vendor's API at this URL: 404 on the API root, an HTML page, DNS failure.
    #[error("{url} does not look like the {vendor} API ({detail}); check the instance url (and path prefix)")]
    WrongUrl {
        vendor: &'static str,
        url: String,
        detail: String,
    },
    /// TLS handshake or certificate verification failed.
    #[error("TLS failure talking to {url}: {detail}; for a private CA set ca_file to its PEM file (insecure = true only as a last resort)")]
    Tls { url: String, detail: String },
    /// Connect failure, reset, timeout.
    #[error("network error talking to {url}: {detail}")]
    Network { url: String, detail: String },
    /// Any other HTTP error status after retries.
    #[error("{vendor} answered HTTP {status} at {url}: {message}")]
    Http {
        vendor: &'static str,
        url: String,
        status: u16,
        message: String,
    },
    /// The body did not match the contract: truncated JSON, HTML where JSON was expected, …
    #[error("unexpected response from {vendor} at {url}: {}", crate::display::clean(.detail))]
    Protocol {
        vendor: &'static str,
        url: String,
        detail: String,
    },
    /// The listing cannot be trusted to be whole: the vendor's own pager contradicts what
    /// came back (a short or empty page before the last announced one, a repeated page, a
    /// first page that is full but announces no more). The run that read it fails and marks
    /// nothing fixed; the pages it stored stay.
    #[error("{vendor} gave an incomplete listing at {url}: {detail}; nothing was marked fixed, the next run tries again")]
    IncompleteListing {
        vendor: &'static str,
        url: String,
        detail: String,
    },
    /// The vendor reported the scan itself as failed.
    // The vendor's words, escaped: they reach logs, the run row and terminals.
    #[error("{vendor} scan {} ended in state \"{}\"{}", crate::display::clean(.scan_id), crate::display::clean(.state), .message.as_deref().map(|m| format!(": {}", crate::display::clean(m))).unwrap_or_default())]
    ScanFailed {
        vendor: &'static str,
        scan_id: String,
        state: String,
        message: Option<String>,
    },
}

/// A vendor-side project (CodeThreat) or API asset (Salt Security) that a scan can bind to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    pub name: String,
    /// Vendor words about it (`github`, `hostname`, …), for `scansync projects`.
    pub kind: Option<String>,
    pub url: Option<String>,
}

/// What a triggered scan is asked to do.
#[derive(Debug, Clone, Default)]
pub struct ScanRequest {
    pub bind_to: String,
    pub branch: Option<String>,
    pub environment: Option<String>,
    pub tags: Vec<String>,
    pub metadata: BTreeMap<String, String>,
}

/// Where a vendor scan is.
#[derive(Debug, Clone, PartialEq)]
pub enum ScanStatus {
    Queued,
    Running {
        progress: Option<u8>,
    },
    Finished,
    /// The vendor says the scan failed; `state` is its word, `message` its last log line.
    Failed {
        state: String,
        message: Option<String>,
    },
}

/// One vendor tenant, reachable.
#[async_trait]
pub trait Vendor: Send + Sync {
    /// The registry name (`codethreat`), used in the store, exports and messages.
    fn name(&self) -> &'static str;

    /// The base URL requests go to (path prefix included), for messages and `test-connection`.
    fn base_url(&self) -> &str;

    /// True when the vendor runs scans that scansync starts (CodeThreat); false for passive
    /// vendors that only report what they observe (Salt Security).
    fn triggers_scans(&self) -> bool;

    /// Checks URL, TLS, token and organization with one cheap call.
    async fn test_connection(&self) -> Result<(), VendorError>;

    /// Checks that what a scan binds to exists.
    async fn resolve_target(&self, bind_to: &str) -> Result<Target, VendorError>;

    /// Everything a scan could bind to.
    async fn list_targets(&self) -> Result<Vec<Target>, VendorError>;

    /// Starts a scan and returns the vendor's scan id. Passive vendors return `Ok(None)`.
    async fn start_scan(&self, req: &ScanRequest) -> Result<Option<String>, VendorError>;

    /// Where a started scan is.
    async fn scan_status(&self, scan_id: &str) -> Result<ScanStatus, VendorError>;

    /// The findings of `bind_to` (of that scan, when one was started), page by page.
    async fn findings<'a>(
        &'a self,
        bind_to: &'a str,
        scan_id: Option<&'a str>,
    ) -> Result<Box<dyn FindingPages + 'a>, VendorError>;
}

/// A cursor over a vendor's findings: one page in memory at a time, never the whole set.
#[async_trait]
pub trait FindingPages: Send {
    /// The next page, or `None` after the last one. An error ends the listing: the run that
    /// read it is partial and must not mark anything fixed.
    async fn next_page(&mut self) -> Result<Option<Vec<Finding>>, VendorError>;
}

/// Makes a connector from a validated instance and its HTTP client.
pub type BuildFn =
    fn(&InstanceConfig, HttpClient) -> Result<Box<dyn Vendor>, crate::http::HttpError>;

/// How config validation and the daemon reach a vendor by its name.
pub struct VendorSpec {
    pub name: &'static str,
    /// Vendor-specific config checks (required and forbidden fields), as `field: message`
    /// strings relative to the instance table, e.g. `organization: is required for codethreat`.
    pub validate: fn(&InstanceConfig) -> Vec<String>,
    /// Whether scansync starts the vendor's scans (CodeThreat) or only reads its findings as
    /// they are (Salt Security): a push webhook means nothing for the latter.
    pub starts_scans: bool,
    /// Builds a connector. Only called on a validated instance.
    /// Fails only on settings the HTTP layer refuses (a token that cannot be a header value).
    pub build: BuildFn,
}

impl crate::config::VendorRules for VendorSpec {
    fn name(&self) -> &'static str {
        self.name
    }

    fn check(&self, instance: &InstanceConfig) -> Vec<String> {
        (self.validate)(instance)
    }

    fn starts_scans(&self) -> bool {
        self.starts_scans
    }
}

/// Every vendor scansync knows. Adding one: a file in this folder and a line here.
pub static REGISTRY: &[VendorSpec] = &[codethreat::SPEC, saltsecurity::SPEC];

/// The spec for a vendor name, if scansync knows it.
pub fn spec(name: &str) -> Option<&'static VendorSpec> {
    REGISTRY.iter().find(|s| s.name == name)
}

/// Connector for a validated instance; `name` is its key in `[instances]`, under which its
/// HTTP requests are counted in the metrics.
pub fn connect(
    name: &str,
    instance: &InstanceConfig,
) -> Result<Box<dyn Vendor>, crate::http::HttpError> {
    connect_stoppable(name, instance, None)
}

/// [`connect`] for runs: a retry's wait ends at once when `stop` is set (SIGTERM), so a
/// vendor that asks for an hour's pause does not hold the process.
pub fn connect_stoppable(
    name: &str,
    instance: &InstanceConfig,
    stop: Option<tokio::sync::watch::Receiver<bool>>,
) -> Result<Box<dyn Vendor>, crate::http::HttpError> {
    let spec = spec(&instance.vendor).expect("validated config names a known vendor");
    let mut http = HttpClient::for_instance(instance)?.with_metrics_label(name);
    if let Some(stop) = stop {
        http = http.with_stop(stop);
    }
    (spec.build)(instance, http)
}

/// The common reading of an HTTP failure, for the cases a connector has no vendor-specific
/// meaning for. `token_hint` says where the user gets a new token.
pub(crate) fn from_http(
    vendor: &'static str,
    token_hint: &'static str,
    err: crate::http::HttpError,
) -> VendorError {
    use crate::http::HttpError;
    match err {
        HttpError::Status {
            url,
            status: status @ (401 | 403),
            ..
        } => VendorError::TokenRejected {
            vendor,
            url,
            status,
            hint: token_hint,
        },
        HttpError::Status {
            url,
            status,
            snippet,
            ..
        } => VendorError::Http {
            vendor,
            url,
            status,
            message: snippet,
        },
        HttpError::Tls { url, detail } => VendorError::Tls { url, detail },
        HttpError::Dns { url, detail } => VendorError::WrongUrl {
            vendor,
            url,
            detail: format!("the host name does not resolve: {detail}"),
        },
        HttpError::Connect { url, detail } => VendorError::Network {
            url,
            detail: format!(
                "{detail}; check that the url's host and port are reachable from this machine (firewall, proxy setting)"
            ),
        },
        HttpError::Interrupted { url, detail } => VendorError::Network {
            url,
            detail: format!("{detail}; the next run retries"),
        },
        HttpError::Timeout { url } => VendorError::Network {
            url,
            detail:
                "timed out; check the network path (proxy, firewall) or raise the instance timeout"
                    .to_string(),
        },
        HttpError::BodyTooLarge { url, limit } => VendorError::Protocol {
            vendor,
            url,
            detail: format!("the response is larger than {limit} bytes"),
        },
        HttpError::Decode { url, detail } => VendorError::Network { url, detail },
        HttpError::Setup(detail) => VendorError::WrongUrl {
            vendor,
            url: "the configured url".to_string(),
            detail,
        },
    }
}

/// A vendor time (RFC 3339 text, or epoch seconds/milliseconds) as RFC 3339 UTC; text that
/// does not parse is kept as the vendor wrote it.
pub(crate) fn normalize_time(v: Option<&serde_json::Value>) -> Option<String> {
    use chrono::{DateTime, SecondsFormat, Utc};
    let utc = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    match v? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(
            DateTime::parse_from_rfc3339(s.trim())
                .map(|t| utc(t.with_timezone(&Utc)))
                .unwrap_or_else(|_| s.clone()),
        ),
        serde_json::Value::Number(n) => {
            let n = n.as_i64()?;
            // Epoch milliseconds are what CodeThreat uses; a 10-digit number is seconds.
            let t = if n.unsigned_abs() >= 100_000_000_000 {
                DateTime::<Utc>::from_timestamp_millis(n)
            } else {
                DateTime::<Utc>::from_timestamp(n, 0)
            };
            t.map(utc)
        }
        _ => None,
    }
}

/// Text at a JSON pointer, if it is a non-empty string (numbers are rendered too: ids and
/// codes come both ways).
pub(crate) fn text_at(v: &serde_json::Value, pointer: &str) -> Option<String> {
    match json_at(v, pointer)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The value at a JSON pointer, as `Value::pointer` finds it, for the connectors' constant
/// pointers (object keys and array indices, no `~` escapes).
///
/// Why not `Value::pointer`: it unescapes every segment into a new string on every call,
/// and mapping a finding makes a dozen such calls; in a profile of a 200,000-finding sync
/// that was half of the mapping's time.
pub(crate) fn json_at<'a>(
    v: &'a serde_json::Value,
    pointer: &str,
) -> Option<&'a serde_json::Value> {
    debug_assert!(!pointer.contains('~'), "escaped pointer {pointer}");
    if pointer.is_empty() {
        return Some(v);
    }
    let mut segments = pointer.split('/');
    if segments.next() != Some("") {
        return None;
    }
    segments.try_fold(v, |v, segment| match v {
        serde_json::Value::Object(map) => map.get(segment),
        serde_json::Value::Array(items) => segment
            .parse::<usize>()
            .ok()
            .filter(|_| !segment.starts_with('+') && (segment == "0" || !segment.starts_with('0')))
            .and_then(|i| items.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_at_finds_what_value_pointer_finds() {
        let v = json!({"a": {"b": [10, {"c": "x"}], "": 1, "n": null}, "d": "e"});
        for p in [
            "",
            "/a",
            "/a/b",
            "/a/b/0",
            "/a/b/1/c",
            "/a/b/2",
            "/a/b/01",
            "/a/b/+1",
            "/a/b/x",
            "/a/",
            "/a/n",
            "/a/n/x",
            "/d",
            "/d/0",
            "/z",
            "a",
            "/a/b/1/c/d",
        ] {
            assert_eq!(json_at(&v, p), v.pointer(p), "pointer {p:?}");
        }
    }

    #[test]
    fn vendor_times_become_rfc3339_utc() {
        assert_eq!(
            normalize_time(Some(&json!("2026-11-01T12:00:00+02:00"))).as_deref(),
            Some("2026-11-01T10:00:00Z")
        );
        assert_eq!(
            normalize_time(Some(&json!(1732300000000i64))).as_deref(),
            Some("2024-11-22T18:26:40Z")
        );
        assert_eq!(
            normalize_time(Some(&json!(1732300000))).as_deref(),
            Some("2024-11-22T18:26:40Z")
        );
        assert_eq!(
            normalize_time(Some(&json!("last tuesday"))).as_deref(),
            Some("last tuesday")
        );
        assert_eq!(normalize_time(Some(&json!(null))), None);
        assert_eq!(normalize_time(None), None);
    }

    #[test]
    fn http_401_and_403_read_as_token_rejected_with_the_vendor_hint() {
        let err = from_http(
            "codethreat",
            "make a new one",
            crate::http::HttpError::Status {
                url: "https://x/api".into(),
                status: 403,
                headers: Default::default(),
                snippet: String::new(),
                body: Default::default(),
            },
        );
        assert!(matches!(
            err,
            VendorError::TokenRejected {
                status: 403,
                hint: "make a new one",
                ..
            }
        ));
    }
}
