//! Salt Security API security. The project's account of the contract:
//! `docs/vendors/saltsecurity.md` (endpoints, pagination, the status-word table and the
//! completeness rules).
//!
//! Salt is passive: it observes traffic and reports posture gaps, so there is no scan to start;
//! a sync reads the current gaps of the bound API host. Everything the contract fixes is a
//! constant below or sits in [`map_gap`], [`verdict`], [`parse_envelope`] or [`GapListing`],
//! so a correction is one edit. (P) marks proposals, (ours) our reading where the contract
//! is silent.

use super::{
    from_http, normalize_time, text_at, FindingPages, ScanRequest, ScanStatus, Target, Vendor,
    VendorError, VendorSpec,
};
use crate::config::InstanceConfig;
use crate::finding::{Finding, Location, Severity, Verdict};
use crate::http::{HttpClient, HttpError, HttpResponse};
use async_trait::async_trait;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

pub const SPEC: VendorSpec = VendorSpec {
    name: VENDOR,
    validate,
    starts_scans: false,
    build,
};

const VENDOR: &str = "saltsecurity";

// --- The contract -------------------------------------------------------------------------
/// (C) `Authorization: Bearer <token>` and `Accept: application/json` on every request.
const AUTH_HEADER: &str = "authorization";
const AUTH_PREFIX: &str = "Bearer ";
const ACCEPT_HEADER: &str = "accept";
const ACCEPT_VALUE: &str = "application/json";
/// (C) Regional API bases.
const REGION_BASES: &[(&str, &str)] = &[
    ("us", "https://api.secured-api.com"),
    ("eu", "https://api.secured-api-eu.com"),
];
/// (C) Posture gaps (the findings): `?limit=&offset=`; (P) `&hostname=<bind_to>`.
const GAPS_PATH: &str = "/v1/apigovern/posture/gaps";
const GAPS_PAGE_SIZE: u64 = 100;
/// (C) The API endpoint inventory, `?limit=&offset=`; items carry (P) `hostname`.
const INVENTORY_PATH: &str = "/v1/inventory/endpoints";
const INVENTORY_PAGE_SIZE: u64 = 1000;
/// (C) The page envelope: `{"response": [ … ], "endOffset": <next offset>}`; an empty
/// `response` ends the listing.
const ENVELOPE_ITEMS: &str = "response";
const ENVELOPE_NEXT: &str = "endOffset";
/// (ours) The most pages one gaps listing may have: 50,000 pages of 100 are 5,000,000 gaps of
/// one host, the same ceiling as CodeThreat's. A listing that has not ended by then is taken
/// as an offset pager that never ends. The inventory walk has the same cap.
const MAX_GAP_PAGES: u64 = 50_000;
/// What the user does about a rejected token.
const TOKEN_HINT: &str = "create a new access token in the Salt tenant (Settings → API Access / Integrations) with at least read permission for API findings, and update the instance's token";
// -------------------------------------------------------------------------------------------

/// The API base for a region word, if it is one.
pub fn region_base(region: &str) -> Option<&'static str> {
    REGION_BASES
        .iter()
        .find(|(r, _)| r.eq_ignore_ascii_case(region))
        .map(|(_, base)| *base)
}

/// Salt Security tenants live in a region (or behind an explicit URL); there is no
/// organization header in its API.
fn validate(i: &InstanceConfig) -> Vec<String> {
    let mut errors = Vec::new();
    match (&i.region, &i.url) {
        (Some(_), Some(_)) => {
            errors.push("region: give either region or url for saltsecurity, not both".to_string())
        }
        (None, None) => errors.push(
            "region: saltsecurity needs region = \"us\" or \"eu\" (or an explicit url)".to_string(),
        ),
        (Some(r), None) if r != "us" && r != "eu" => errors.push(format!(
            "region: \"{r}\" is not a Salt Security region (\"us\" or \"eu\")"
        )),
        _ => {}
    }
    if i.organization.is_some() {
        errors.push(
            "organization: is a codethreat setting; saltsecurity has no organization".to_string(),
        );
    }
    errors
}

fn build(i: &InstanceConfig, http: HttpClient) -> Result<Box<dyn Vendor>, HttpError> {
    let token = i.resolved_token.as_ref().ok_or_else(|| {
        HttpError::Setup("no token was resolved for this saltsecurity instance".to_string())
    })?;
    let http = match (&i.url, i.region.as_deref()) {
        (Some(_), _) => http,
        (None, Some(region)) => {
            let base = region_base(region).ok_or_else(|| {
                HttpError::Setup(format!("\"{region}\" is not a Salt Security region"))
            })?;
            http.with_base_url(base)?
        }
        (None, None) => {
            return Err(HttpError::Setup(
                "saltsecurity needs region or url".to_string(),
            ))
        }
    };
    let http = http
        .with_secret_header(AUTH_HEADER, AUTH_PREFIX, token)?
        .with_header(ACCEPT_HEADER, ACCEPT_VALUE)?;
    Ok(Box::new(SaltSecurity { http }))
}

/// One Salt Security tenant.
pub struct SaltSecurity {
    http: HttpClient,
}

/// One envelope page: the items verbatim, and where the next page starts.
struct Envelope<'b> {
    items: Vec<&'b RawValue>,
    next_offset: u64,
}

/// (C) Reads one envelope page requested at `offset`. Where the next page starts: `endOffset`
/// when present (a number, or a number in a string); counting the items only when it is
/// absent or null. An `endOffset` that does not move past `offset` while items came back
/// would read the same page forever or go back: the listing is incomplete.
fn parse_envelope(resp: &HttpResponse, offset: u64) -> Result<Envelope<'_>, VendorError> {
    if resp.is_html() {
        return Err(VendorError::WrongUrl {
            vendor: VENDOR,
            url: resp.url.clone(),
            detail: "it answered with an HTML page".to_string(),
        });
    }
    // Parse the envelope with its items left raw, so each finding keeps its exact text.
    let raw: std::collections::HashMap<String, &RawValue> = serde_json::from_slice(&resp.body)
        .map_err(|e| VendorError::Protocol {
            vendor: VENDOR,
            url: resp.url.clone(),
            detail: format!("expected {{\"{ENVELOPE_ITEMS}\": [...]}}: {e}"),
        })?;
    let items: Vec<&RawValue> = match raw.get(ENVELOPE_ITEMS) {
        Some(r) => serde_json::from_str(r.get()).map_err(|e| VendorError::Protocol {
            vendor: VENDOR,
            url: resp.url.clone(),
            detail: format!("\"{ENVELOPE_ITEMS}\" is not an array: {e}"),
        })?,
        None => {
            return Err(VendorError::Protocol {
                vendor: VENDOR,
                url: resp.url.clone(),
                detail: format!("the answer has no \"{ENVELOPE_ITEMS}\" array"),
            })
        }
    };
    let end_offset = match raw.get(ENVELOPE_NEXT).map(|n| read_offset(n.get())) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(n))) => Some(n),
        Some(Err(text)) => {
            return Err(VendorError::Protocol {
                vendor: VENDOR,
                url: resp.url.clone(),
                detail: format!("\"{ENVELOPE_NEXT}\" is not a whole number: {text}"),
            })
        }
    };
    let next_offset = match end_offset {
        // A server that omits `endOffset` is read by counting. An earlier `endOffset` near
        // u64::MAX leaves no room to count on: no listing is that long.
        None => offset.checked_add(items.len() as u64).ok_or_else(|| {
            VendorError::IncompleteListing {
                vendor: VENDOR,
                url: resp.url.clone(),
                detail: format!(
                    "offset {offset} plus the {} items that came back is past any listing",
                    items.len()
                ),
            }
        })?,
        Some(n) if n <= offset && !items.is_empty() => {
            return Err(VendorError::IncompleteListing {
                vendor: VENDOR,
                url: resp.url.clone(),
                detail: format!(
                    "{ENVELOPE_NEXT} {n} does not move past offset {offset} although {} items \
                     came back",
                    items.len()
                ),
            })
        }
        Some(n) => n,
    };
    Ok(Envelope { items, next_offset })
}

/// `endOffset` as Salt may send it: a number, a number in a string, or null (absent).
fn read_offset(text: &str) -> Result<Option<u64>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Null) => Ok(None),
        Ok(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| text.to_string()),
        Ok(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| text.to_string()),
        _ => Err(text.to_string()),
    }
}

impl SaltSecurity {
    fn http_error(&self, err: HttpError) -> VendorError {
        match err {
            HttpError::Status {
                status: 404, url, ..
            } => VendorError::WrongUrl {
                vendor: VENDOR,
                url,
                detail: "HTTP 404 on a Salt Security API path".to_string(),
            },
            other => from_http(VENDOR, TOKEN_HINT, other),
        }
    }

    async fn page(
        &self,
        path: &str,
        limit: u64,
        offset: u64,
        hostname: Option<&str>,
    ) -> Result<HttpResponse, VendorError> {
        let (limit, offset) = (limit.to_string(), offset.to_string());
        let mut query = vec![("limit", limit.as_str()), ("offset", offset.as_str())];
        if let Some(h) = hostname {
            query.push(("hostname", h));
        }
        self.http
            .get(path, &query)
            .await
            .map_err(|e| self.http_error(e))
    }

    /// Walks the inventory; `stop_at` ends the walk early once that host is seen.
    async fn inventory_hosts(
        &self,
        stop_at: Option<&str>,
    ) -> Result<BTreeSet<String>, VendorError> {
        let mut walk = InventoryWalk::new(stop_at);
        loop {
            let resp = self
                .page(INVENTORY_PATH, INVENTORY_PAGE_SIZE, walk.offset, None)
                .await?;
            if walk.read(&resp)? {
                return Ok(walk.hosts);
            }
        }
    }
}

/// The inventory walk apart from fetching: the hosts seen, and where the next page starts.
struct InventoryWalk<'s> {
    stop_at: Option<&'s str>,
    hosts: BTreeSet<String>,
    page: u64,
    offset: u64,
}

impl<'s> InventoryWalk<'s> {
    fn new(stop_at: Option<&'s str>) -> InventoryWalk<'s> {
        InventoryWalk {
            stop_at,
            hosts: BTreeSet::new(),
            page: 0,
            offset: 0,
        }
    }

    /// One page read at `self.offset`: true when the walk is over (the empty page, or the
    /// host `stop_at` seen).
    fn read(&mut self, resp: &HttpResponse) -> Result<bool, VendorError> {
        self.page += 1;
        let offset = self.offset;
        let env = parse_envelope(resp, offset)?;
        if env.items.is_empty() {
            return Ok(true);
        }
        if self.page > MAX_GAP_PAGES {
            return Err(VendorError::IncompleteListing {
                vendor: VENDOR,
                url: resp.url.clone(),
                detail: format!(
                    "the inventory has not ended after {MAX_GAP_PAGES} pages (offset {offset})"
                ),
            });
        }
        for item in &env.items {
            let v: Value = serde_json::from_str(item.get()).unwrap_or(Value::Null);
            if let Some(h) = text_at(&v, "/hostname").or_else(|| text_at(&v, "/host")) {
                let found = self.stop_at.is_some_and(|s| s.eq_ignore_ascii_case(&h));
                self.hosts.insert(h);
                if found {
                    return Ok(true);
                }
            }
        }
        self.offset = env.next_offset;
        Ok(false)
    }
}

#[async_trait]
impl Vendor for SaltSecurity {
    fn name(&self) -> &'static str {
        VENDOR
    }

    fn base_url(&self) -> &str {
        self.http.base_url()
    }

    fn triggers_scans(&self) -> bool {
        SPEC.starts_scans
    }

    async fn test_connection(&self) -> Result<(), VendorError> {
        let resp = self.page(GAPS_PATH, 1, 0, None).await?;
        parse_envelope(&resp, 0).map_err(|e| match e {
            VendorError::Protocol { url, detail, .. } => VendorError::WrongUrl {
                vendor: VENDOR,
                url,
                detail: format!("not a Salt Security answer: {detail}"),
            },
            other => other,
        })?;
        Ok(())
    }

    /// An asset exists when the inventory lists its hostname, or — since inventory and
    /// findings can lag each other — when Salt reports gaps for it.
    async fn resolve_target(&self, bind_to: &str) -> Result<Target, VendorError> {
        let hosts = self.inventory_hosts(Some(bind_to)).await?;
        let known = hosts.iter().any(|h| h.eq_ignore_ascii_case(bind_to)) || {
            let resp = self
                .page(GAPS_PATH, GAPS_PAGE_SIZE, 0, Some(bind_to))
                .await?;
            let env = parse_envelope(&resp, 0)?;
            env.items
                .iter()
                .any(|raw| gap_host(raw).is_some_and(|h| h.eq_ignore_ascii_case(bind_to)))
        };
        if !known {
            return Err(VendorError::TargetNotFound {
                vendor: VENDOR,
                url: format!("{}{INVENTORY_PATH}", self.http.base_url()),
                name: bind_to.to_string(),
            });
        }
        Ok(Target {
            name: bind_to.to_string(),
            kind: Some("hostname".to_string()),
            url: None,
        })
    }

    async fn list_targets(&self) -> Result<Vec<Target>, VendorError> {
        Ok(self
            .inventory_hosts(None)
            .await?
            .into_iter()
            .map(|name| Target {
                name,
                kind: Some("hostname".to_string()),
                url: None,
            })
            .collect())
    }

    /// Passive: nothing to start; the sync reads the current gaps.
    async fn start_scan(&self, _req: &ScanRequest) -> Result<Option<String>, VendorError> {
        Ok(None)
    }

    /// Never called for a passive vendor (no scan id is ever handed out); answers `Finished`
    /// so a caller that polls anyway proceeds straight to reading findings.
    async fn scan_status(&self, _scan_id: &str) -> Result<ScanStatus, VendorError> {
        Ok(ScanStatus::Finished)
    }

    async fn findings<'a>(
        &'a self,
        bind_to: &'a str,
        _scan_id: Option<&'a str>,
    ) -> Result<Box<dyn FindingPages + 'a>, VendorError> {
        Ok(Box::new(GapPages {
            vendor: self,
            walk: GapWalk::new(bind_to),
        }))
    }
}

fn gap_host(raw: &RawValue) -> Option<String> {
    let v: Value = serde_json::from_str(raw.get()).ok()?;
    text_at(&v, "/hostname")
}

/// (P) One posture gap → a normalized finding. `category` ("API3:2023 Broken Object Property
/// Level Authorization") is the OWASP API category; the gap's `name` is the check that fired,
/// so it is the rule id (many endpoints share it, as SARIF rules expect). Missing fields leave
/// their part empty; only a non-object fails.
pub fn map_gap(raw: &RawValue) -> Result<Finding, String> {
    let v: Value = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
    if !v.is_object() {
        return Err(format!("a gap is not a JSON object: {}", raw.get()));
    }
    let name = text_at(&v, "/name");
    let status = text_at(&v, "/status");
    let method = text_at(&v, "/method").map(|m| m.to_ascii_uppercase());
    let path = text_at(&v, "/path");
    let host = text_at(&v, "/hostname");
    let location = if path.is_some() || host.is_some() {
        Location::Api {
            method: method.unwrap_or_default(),
            path: path.unwrap_or_default(),
            host: host.unwrap_or_default(),
        }
    } else {
        Location::Unknown
    };
    Ok(Finding {
        vendor_id: text_at(&v, "/id"),
        title: name
            .clone()
            .or_else(|| text_at(&v, "/category"))
            .unwrap_or_else(|| "Salt Security posture gap".to_string()),
        severity: text_at(&v, "/severity")
            .and_then(|w| Severity::from_vendor_word(&w))
            .unwrap_or(Severity::Info),
        vendor_status: status.clone(),
        cwe: None,
        owasp: text_at(&v, "/category"),
        rule_id: name,
        location,
        description: text_at(&v, "/description"),
        remediation: text_at(&v, "/remediation"),
        vendor_url: None,
        vendor_first_seen: normalize_time(v.get("firstSeen")),
        vendor_last_seen: normalize_time(v.get("lastSeen")),
        raw: raw.get().to_string(),
        verdict: status.as_deref().and_then(verdict),
    })
}

/// (P) A gap's `status` → what it means for the lifecycle. The contract's words are `Open`,
/// `Resolved`, `Ignored`; `False Positive` (a dismissed gap) is read too, though no public
/// client shows it. Case,
/// `_`/`-` and runs of spaces do not matter; an unknown word is `None` (read as "still there").
///
/// | word | verdict |
/// |---|---|
/// | `Open` | Active |
/// | `Resolved` | Resolved |
/// | `Ignored` | Accepted |
/// | `False Positive` (`false_positive`) | FalsePositive |
pub fn verdict(status: &str) -> Option<Verdict> {
    let word: Vec<String> = status
        .split(|c: char| c.is_whitespace() || c == '_' || c == '-')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    match word.join(" ").as_str() {
        "open" => Some(Verdict::Active),
        "resolved" => Some(Verdict::Resolved),
        "ignored" => Some(Verdict::Accepted),
        "false positive" => Some(Verdict::FalsePositive),
        _ => None,
    }
}

/// (ours) What makes a gaps listing whole, kept free of I/O so each rule is a unit test.
/// Salt's pager has no total, so an early empty page cannot be told from the real end (the
/// store's mass-fix guard covers that). What can be told:
///
/// - the offset advances (checked in [`parse_envelope`]);
/// - no page repeats an earlier one (same gaps, same text): the pager is stuck or looping;
/// - at most [`MAX_GAP_PAGES`] pages: a pager that never ends is not a listing.
#[derive(Debug)]
struct GapListing {
    max_pages: u64,
    pages: u64,
    /// Digest of every non-empty page read → the offset it was read at.
    digests: HashMap<u64, u64>,
}

impl GapListing {
    fn new(max_pages: u64) -> GapListing {
        GapListing {
            max_pages,
            pages: 0,
            digests: HashMap::new(),
        }
    }

    /// A non-empty page read at `offset`, with the digest of its items.
    fn page(&mut self, offset: u64, digest: u64) -> Result<(), String> {
        self.pages += 1;
        if self.pages > self.max_pages {
            return Err(format!(
                "the listing has not ended after {} pages (offset {offset}); a pager that \
                 never ends is taken as an incomplete listing",
                self.max_pages
            ));
        }
        if let Some(earlier) = self.digests.insert(digest, offset) {
            return Err(format!(
                "the page at offset {offset} repeats the page at offset {earlier}"
            ));
        }
        Ok(())
    }
}

/// A digest of a page's items, to tell a repeated page from a new one.
fn page_digest(items: &[&RawValue]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    items.len().hash(&mut h);
    for item in items {
        item.get().hash(&mut h);
    }
    h.finish()
}

/// Walks `offset = endOffset` until an empty page, one HTTP page per call, and ends with an
/// error when [`GapListing`] or [`parse_envelope`] finds the pager lying.
struct GapPages<'a> {
    vendor: &'a SaltSecurity,
    walk: GapWalk<'a>,
}

/// The gaps walk apart from fetching: where the next page starts, and the listing's rules.
struct GapWalk<'a> {
    bind_to: &'a str,
    /// `None` once the empty page was seen (or the listing failed).
    offset: Option<u64>,
    listing: GapListing,
}

impl<'a> GapWalk<'a> {
    fn new(bind_to: &'a str) -> GapWalk<'a> {
        GapWalk {
            bind_to,
            offset: Some(0),
            listing: GapListing::new(MAX_GAP_PAGES),
        }
    }

    /// The page read at `offset`: its findings, `None` when it ended the listing.
    fn read(
        &mut self,
        offset: u64,
        resp: &HttpResponse,
    ) -> Result<Option<Vec<Finding>>, VendorError> {
        self.offset = None;
        let env = parse_envelope(resp, offset)?;
        if env.items.is_empty() {
            return Ok(None);
        }
        // The next offset is past what this page served: `endOffset` beyond `offset + items`
        // (or `offset + limit`) skips gaps that no page ever showed. Items are counted as
        // they came, before the connector's own hostname filter.
        let served = offset + (env.items.len() as u64).min(GAPS_PAGE_SIZE);
        if env.next_offset > served {
            return Err(VendorError::IncompleteListing {
                vendor: VENDOR,
                url: resp.url.clone(),
                detail: format!(
                    "{ENVELOPE_NEXT} {} skips past offset {served} (offset {offset} + {} \
                     items served): the gaps in between were never served",
                    env.next_offset,
                    served - offset
                ),
            });
        }
        self.listing
            .page(offset, page_digest(&env.items))
            .map_err(|detail| VendorError::IncompleteListing {
                vendor: VENDOR,
                url: resp.url.clone(),
                detail,
            })?;
        let mut findings = Vec::with_capacity(env.items.len());
        for raw in &env.items {
            // (P) The server may ignore `hostname`; keep only the bound host's gaps. A gap
            // without a hostname is trusted to be the server's filtered answer.
            if gap_host(raw).is_some_and(|h| !h.eq_ignore_ascii_case(self.bind_to)) {
                continue;
            }
            findings.push(map_gap(raw).map_err(|detail| VendorError::Protocol {
                vendor: VENDOR,
                url: resp.url.clone(),
                detail,
            })?);
        }
        self.offset = Some(env.next_offset);
        Ok(Some(findings))
    }
}

/// Runs the gaps page loop of the host `bind_to` over `responses` (in the order the walk
/// asks for them) as [`Vendor::findings`] does, without HTTP, and the inventory walk
/// ([`Vendor::list_targets`], and [`Vendor::resolve_target`] stopping at `bind_to`) over the
/// same answers: the gaps of each page read, and the hosts each inventory walk found.
/// Public for the fuzz targets (`fuzz/`).
pub fn walk_salt_pages(bind_to: &str, responses: &[HttpResponse]) -> GapWalkResult {
    let mut gaps = GapWalk::new(bind_to);
    let mut pages = Vec::new();
    let mut gap_result = Ok(());
    for resp in responses {
        let Some(offset) = gaps.offset else { break };
        match gaps.read(offset, resp) {
            Ok(Some(findings)) => pages.push((offset, findings)),
            Ok(None) => break,
            Err(e) => {
                gap_result = Err(e);
                break;
            }
        }
    }
    let inventory = |stop_at| {
        let mut walk = InventoryWalk::new(stop_at);
        for resp in responses {
            if walk.read(resp)? {
                break;
            }
        }
        Ok(walk.hosts)
    };
    GapWalkResult {
        pages: gap_result.map(|()| pages),
        all_hosts: inventory(None),
        hosts_to_bound: inventory(Some(bind_to)),
    }
}

/// What [`walk_salt_pages`] read.
#[derive(Debug)]
pub struct GapWalkResult {
    /// Each gaps page read: the offset it was read at and its findings.
    pub pages: Result<Vec<(u64, Vec<Finding>)>, VendorError>,
    pub all_hosts: Result<BTreeSet<String>, VendorError>,
    pub hosts_to_bound: Result<BTreeSet<String>, VendorError>,
}

#[async_trait]
impl FindingPages for GapPages<'_> {
    async fn next_page(&mut self) -> Result<Option<Vec<Finding>>, VendorError> {
        let Some(offset) = self.walk.offset else {
            return Ok(None);
        };
        let resp = self
            .vendor
            .page(GAPS_PATH, GAPS_PAGE_SIZE, offset, Some(self.walk.bind_to))
            .await?;
        self.walk.read(offset, &resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn gap_maps_field_by_field() {
        let text = r#"{"id":"gap-1","name":"Sensitive data exposed in response","severity":"High",
            "status":"Open","category":"API3:2023 Broken Object Property Level Authorization",
            "hostname":"payments.example.com","method":"get","path":"/v1/accounts/{id}",
            "description":"d","remediation":"r","firstSeen":"2026-11-01T10:00:00Z","lastSeen":"2026-11-22T09:00:00+01:00"}"#;
        let f = map_gap(&raw(text)).unwrap();
        assert_eq!(f.vendor_id.as_deref(), Some("gap-1"));
        assert_eq!(f.title, "Sensitive data exposed in response");
        assert_eq!(
            f.rule_id.as_deref(),
            Some("Sensitive data exposed in response")
        );
        assert_eq!(f.severity, Severity::High);
        assert_eq!(f.vendor_status.as_deref(), Some("Open"));
        assert_eq!(
            f.owasp.as_deref(),
            Some("API3:2023 Broken Object Property Level Authorization")
        );
        assert_eq!(
            f.location,
            Location::Api {
                method: "GET".into(),
                path: "/v1/accounts/{id}".into(),
                host: "payments.example.com".into()
            }
        );
        assert_eq!(f.description.as_deref(), Some("d"));
        assert_eq!(f.remediation.as_deref(), Some("r"));
        assert_eq!(f.vendor_first_seen.as_deref(), Some("2026-11-01T10:00:00Z"));
        assert_eq!(f.vendor_last_seen.as_deref(), Some("2026-11-22T08:00:00Z"));
        assert_eq!(f.raw, text);
    }

    #[test]
    fn sparse_gap_falls_back_instead_of_failing() {
        let f = map_gap(&raw(r#"{"severity":"Informational"}"#)).unwrap();
        assert_eq!(f.title, "Salt Security posture gap");
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(f.location, Location::Unknown);
        assert!(map_gap(&raw("3")).is_err());
    }

    #[test]
    fn regions_map_to_their_api_bases() {
        assert_eq!(region_base("us"), Some("https://api.secured-api.com"));
        assert_eq!(region_base("EU"), Some("https://api.secured-api-eu.com"));
        assert_eq!(region_base("ap"), None);
    }

    fn response(body: &str) -> HttpResponse {
        HttpResponse {
            url: "http://salt/v1/apigovern/posture/gaps".into(),
            status: 200,
            headers: Default::default(),
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    fn next_offset(body: &str, offset: u64) -> Result<u64, String> {
        match parse_envelope(&response(body), offset) {
            Ok(env) => Ok(env.next_offset),
            Err(VendorError::IncompleteListing { detail, .. }) => Err(detail),
            Err(other) => Err(format!("not an incomplete listing: {other}")),
        }
    }

    #[test]
    fn end_offset_is_followed_and_counting_only_stands_in_when_it_is_absent() {
        assert_eq!(
            next_offset(r#"{"response":[{},{}],"endOffset":102}"#, 100),
            Ok(102)
        );
        assert_eq!(
            next_offset(r#"{"response":[{},{}],"endOffset":"250"}"#, 100),
            Ok(250)
        );
        assert_eq!(next_offset(r#"{"response":[{},{}]}"#, 100), Ok(102));
        assert_eq!(
            next_offset(r#"{"response":[{},{}],"endOffset":null}"#, 100),
            Ok(102)
        );
        // The empty page ends the listing, whatever its endOffset says.
        assert_eq!(
            next_offset(r#"{"response":[],"endOffset":100}"#, 100),
            Ok(100)
        );
    }

    #[test]
    fn end_offset_that_does_not_advance_while_items_came_back_is_incomplete() {
        assert_eq!(
            next_offset(r#"{"response":[{},{}],"endOffset":100}"#, 100),
            Err("endOffset 100 does not move past offset 100 although 2 items came back".into())
        );
        assert_eq!(
            next_offset(r#"{"response":[{}],"endOffset":0}"#, 300),
            Err("endOffset 0 does not move past offset 300 although 1 items came back".into())
        );
        let err = parse_envelope(&response(r#"{"response":[{}],"endOffset":"soon"}"#), 0)
            .err()
            .unwrap();
        assert!(
            matches!(&err, VendorError::Protocol { detail, .. } if detail.contains("endOffset")),
            "{err:?}"
        );
    }

    #[test]
    fn counting_past_the_largest_offset_is_incomplete_not_a_panic() {
        // Found by the salt_pages fuzz target: an inventory page's `endOffset` of u64::MAX,
        // then a page without `endOffset`, overflowed the count.
        assert_eq!(
            next_offset(r#"{"response":[{}]}"#, u64::MAX),
            Err(
                "offset 18446744073709551615 plus the 1 items that came back is past any listing"
                    .into()
            )
        );
        let pages = [
            r#"{"response":[{"hostname":"a.example"}],"endOffset":18446744073709551615}"#,
            r#"{"response":[{"host":"b.example"}]}"#,
        ];
        let responses: Vec<HttpResponse> = pages.iter().map(|b| response(b)).collect();
        let walk = walk_salt_pages("b.example", &responses);
        assert!(matches!(
            walk.all_hosts,
            Err(VendorError::IncompleteListing { .. })
        ));
    }

    #[test]
    fn page_repeating_an_earlier_page_is_incomplete() {
        let mut listing = GapListing::new(100);
        listing.page(0, 11).unwrap();
        listing.page(100, 12).unwrap();
        assert_eq!(
            listing.page(200, 12),
            Err("the page at offset 200 repeats the page at offset 100".into())
        );
        let mut looping = GapListing::new(100);
        looping.page(0, 1).unwrap();
        looping.page(100, 2).unwrap();
        assert_eq!(
            looping.page(200, 1),
            Err("the page at offset 200 repeats the page at offset 0".into())
        );
    }

    #[test]
    fn listing_longer_than_the_cap_is_incomplete() {
        let mut listing = GapListing::new(3);
        for (i, offset) in [0, 100, 200].into_iter().enumerate() {
            listing.page(offset, i as u64).unwrap();
        }
        assert_eq!(
            listing.page(300, 3),
            Err(
                "the listing has not ended after 3 pages (offset 300); a pager that never ends \
                 is taken as an incomplete listing"
                    .into()
            )
        );
        const { assert!(MAX_GAP_PAGES == 50_000) };
    }

    #[test]
    fn status_words_map_to_verdicts() {
        let table: &[(&str, Option<Verdict>)] = &[
            ("Open", Some(Verdict::Active)),
            ("open", Some(Verdict::Active)),
            ("Resolved", Some(Verdict::Resolved)),
            ("RESOLVED", Some(Verdict::Resolved)),
            ("Ignored", Some(Verdict::Accepted)),
            ("False Positive", Some(Verdict::FalsePositive)),
            ("false_positive", Some(Verdict::FalsePositive)),
            ("Fixed", None),
            ("", None),
        ];
        for (word, expected) in table {
            assert_eq!(verdict(word), *expected, "{word:?}");
        }
        let f = map_gap(&raw(r#"{"id":"g","status":"Ignored"}"#)).unwrap();
        assert_eq!(f.verdict, Some(Verdict::Accepted));
        assert_eq!(map_gap(&raw(r#"{"id":"g"}"#)).unwrap().verdict, None);
    }
}
