//! CodeThreat SAST. The project's account of the contract: `docs/vendors/codethreat.md`
//! (endpoints, pagination, the status-word table and the completeness rules).
//!
//! Everything the contract fixes (paths, header names, field names, page sizes, status words,
//! what makes a listing whole) is a constant below or sits in [`map_issue`], [`map_status`],
//! [`verdict`] or [`IssueListing`], so a correction is one edit. Lines marked (P) are
//! proposals in the contract, not yet seen in a CodeThreat client; (ours) marks our reading
//! where the contract is silent.

use super::{
    from_http, json_at, normalize_time, text_at, FindingPages, ScanRequest, ScanStatus, Target,
    Vendor, VendorError, VendorSpec,
};
use crate::config::InstanceConfig;
use crate::finding::{Finding, Location, Severity, Verdict};
use crate::http::{HttpClient, HttpError, HttpResponse};
use async_trait::async_trait;
use base64::Engine as _;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::HashMap;

pub const SPEC: VendorSpec = VendorSpec {
    name: VENDOR,
    validate,
    starts_scans: true,
    build,
};

const VENDOR: &str = "codethreat";

// --- The contract -------------------------------------------------------------------------
/// (C) Personal access token, as `Authorization: Bearer <token>`.
const AUTH_HEADER: &str = "authorization";
const AUTH_PREFIX: &str = "Bearer ";
/// (C) The organization name, exactly as CodeThreat shows it, on every request.
const ORG_HEADER: &str = "x-ct-organization";
/// (C) `GET ?key=<organization>`: 200 when token and organization are accepted.
const ORGANIZATION_PATH: &str = "/api/organization";
/// (C) `GET ?key=<project>`: 200 when the project exists, 404 when not.
const PROJECT_PATH: &str = "/api/project";
/// (P) `GET ?page=<1-based>&pageSize=` → `{"data":[{"project_name","type"}],"pagination":{"total"}}`.
const PROJECTS_PATH: &str = "/api/projects";
const PROJECTS_PAGE_SIZE: usize = 100;
/// (P) `POST` JSON `{"project","branch","tags","metadata"}` → `{"error":false,"scan_id"}`.
const SCAN_START_PATH: &str = "/api/scan/start";
/// (C) `GET <path>/<scan id>` → `{"state","progress_data":{"progress"},"logs":[{"message"}]}`.
const SCAN_STATUS_PATH: &str = "/api/scan/status";
/// (C) `GET ?q=<base64(JSON {"projectName"})>&pageSize=500[&sid=]` → JSON array of issues.
const ISSUES_PATH: &str = "/api/scanlog/issues";
/// (C) The page size asked for. A first page holding this many issues is "full".
const ISSUES_PAGE_SIZE: usize = 500;
/// (C) Response header on the first issues page: base64(JSON `{"id","pages"}`).
///
/// Our reading of the contract: the first body is the first page; the further pages are the
/// same query plus `pid=<id>&page=<i>` for i = 1..=pages; `pages == 0` means the first body
/// was everything. What makes such a walk complete is [`IssueListing`].
const PAGER_HEADER: &str = "x-ct-pager";
/// (C) The newer, wrapped body: `{"data": [...], "pagination": {"total": N}}`; accepted on
/// the issues pages too. `total` counts the issues of the whole listing.
const WRAPPED_ITEMS: &str = "data";
const WRAPPED_TOTAL: &str = "/pagination/total";
/// (ours) The most pages one issues listing may have, the first body included: 10,000 pages
/// of 500 are 5,000,000 issues of one project. A pager announcing more is taken as one that
/// never ends, and the listing as incomplete.
const MAX_ISSUE_PAGES: u64 = 10_000;
/// (C) The UI page of one scan's issues: `<base>/issues?scan_id=<sid>&projectName=<project>`;
/// of a project: `<base>/projects/project-details/<project>?tenant=<org>`.
const UI_ISSUES_PATH: &str = "/issues";
const UI_PROJECT_PATH: &str = "/projects/project-details";
/// What the user does about a rejected token.
const TOKEN_HINT: &str = "generate a new token under Settings → Access Token in CodeThreat (it is shown only once) and update the instance's token";
// -------------------------------------------------------------------------------------------

/// CodeThreat has no regional default (cloud or self-hosted), and every request names the
/// organization, so both are required; `region` belongs to Salt Security.
fn validate(i: &InstanceConfig) -> Vec<String> {
    let mut errors = Vec::new();
    if i.url.is_none() {
        errors.push(
            "url: is required for codethreat (e.g. \"https://cloud.codethreat.com\")".to_string(),
        );
    }
    if i.organization
        .as_deref()
        .is_none_or(|o| o.trim().is_empty())
    {
        errors.push(
            "organization: is required for codethreat (the organization name, exactly as CodeThreat shows it)"
                .to_string(),
        );
    }
    if i.region.is_some() {
        errors.push("region: is a saltsecurity setting; codethreat takes url instead".to_string());
    }
    errors
}

fn build(i: &InstanceConfig, http: HttpClient) -> Result<Box<dyn Vendor>, HttpError> {
    let token = i.resolved_token.as_ref().ok_or_else(|| {
        HttpError::Setup("no token was resolved for this codethreat instance".to_string())
    })?;
    let organization = i.organization.clone().unwrap_or_default();
    let http = http
        .with_secret_header(AUTH_HEADER, AUTH_PREFIX, token)?
        .with_header(ORG_HEADER, &organization)?;
    Ok(Box::new(CodeThreat { http, organization }))
}

/// One CodeThreat organization on one server.
pub struct CodeThreat {
    http: HttpClient,
    organization: String,
}

impl CodeThreat {
    fn http_error(&self, err: HttpError) -> VendorError {
        from_http(VENDOR, TOKEN_HINT, err)
    }

    /// Where a person sees a project's or a scan's issues.
    fn ui_link(&self, project: &str, scan_id: Option<&str>) -> Option<String> {
        let url = match scan_id {
            Some(sid) => self.http.url(
                UI_ISSUES_PATH,
                &[("scan_id", sid), ("projectName", project)],
            ),
            None => self.http.url(UI_PROJECT_PATH, &[]).map(|mut u| {
                if let Ok(mut segments) = u.path_segments_mut() {
                    segments.push(project);
                }
                u.query_pairs_mut()
                    .append_pair("tenant", &self.organization);
                u
            }),
        };
        url.ok().map(String::from)
    }

    /// A 404 (or 403) on a project-scoped call: the project is unknown when the server
    /// answered in JSON, the URL is wrong when it answered with anything else.
    fn project_error(&self, name: &str, err: HttpError) -> VendorError {
        match err {
            HttpError::Status {
                status: 404,
                url,
                body,
                ..
            } => {
                if serde_json::from_slice::<Value>(&body).is_ok() {
                    VendorError::TargetNotFound {
                        vendor: VENDOR,
                        url,
                        name: name.to_string(),
                    }
                } else {
                    VendorError::WrongUrl {
                        vendor: VENDOR,
                        url,
                        detail: "HTTP 404 without a CodeThreat JSON answer".to_string(),
                    }
                }
            }
            other => self.http_error(other),
        }
    }

    fn json(&self, resp: &HttpResponse) -> Result<Value, VendorError> {
        parse_json(resp)
    }
}

fn parse_json(resp: &HttpResponse) -> Result<Value, VendorError> {
    if resp.is_html() {
        return Err(VendorError::WrongUrl {
            vendor: VENDOR,
            url: resp.url.clone(),
            detail: "it answered with an HTML page".to_string(),
        });
    }
    serde_json::from_slice(&resp.body).map_err(|e| VendorError::Protocol {
        vendor: VENDOR,
        url: resp.url.clone(),
        detail: format!("the body is not JSON: {e}"),
    })
}

#[async_trait]
impl Vendor for CodeThreat {
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
        let org = self.organization.as_str();
        match self.http.get(ORGANIZATION_PATH, &[("key", org)]).await {
            Ok(resp) => {
                if resp.is_html() || serde_json::from_slice::<Value>(&resp.body).is_err() {
                    return Err(VendorError::WrongUrl {
                        vendor: VENDOR,
                        url: resp.url,
                        detail: "HTTP 200 but not a CodeThreat JSON answer".to_string(),
                    });
                }
                Ok(())
            }
            Err(HttpError::Status {
                url,
                status,
                body,
                snippet,
                ..
            }) if status == 403 || status == 404 => {
                Err(organization_check_error(&url, status, &body, &snippet, org))
            }
            Err(e) => Err(self.http_error(e)),
        }
    }

    async fn resolve_target(&self, bind_to: &str) -> Result<Target, VendorError> {
        let resp = self
            .http
            .get(PROJECT_PATH, &[("key", bind_to)])
            .await
            .map_err(|e| self.project_error(bind_to, e))?;
        let body = self.json(&resp)?;
        // Older servers answer 200 with `{"code": 400, …}` for an unknown project.
        let code = body.get("code").and_then(Value::as_i64);
        if code.is_some_and(|c| c >= 400)
            || body.get("error").and_then(Value::as_bool) == Some(true)
        {
            return Err(VendorError::TargetNotFound {
                vendor: VENDOR,
                url: resp.url,
                name: bind_to.to_string(),
            });
        }
        Ok(Target {
            name: bind_to.to_string(),
            kind: text_at(&body, "/type").or_else(|| text_at(&body, "/result/type")),
            url: self.ui_link(bind_to, None),
        })
    }

    async fn list_targets(&self) -> Result<Vec<Target>, VendorError> {
        let mut targets = Vec::new();
        let size = PROJECTS_PAGE_SIZE.to_string();
        let mut previous_first: Option<String> = None;
        for page in 1u64.. {
            let page_text = page.to_string();
            let resp = self
                .http
                .get(
                    PROJECTS_PATH,
                    &[("page", page_text.as_str()), ("pageSize", size.as_str())],
                )
                .await
                .map_err(|e| self.http_error(e))?;
            let body = self.json(&resp)?;
            let Some(data) = body.get("data").and_then(Value::as_array) else {
                return Err(VendorError::Protocol {
                    vendor: VENDOR,
                    url: resp.url,
                    detail: "expected {\"data\": [...]} listing projects".to_string(),
                });
            };
            let first = data.first().and_then(|p| text_at(p, "/project_name"));
            if page > 1 && first.is_some() && first == previous_first {
                return Err(VendorError::Protocol {
                    vendor: VENDOR,
                    url: resp.url,
                    detail: "the server repeats the same page of projects (it ignores page=)"
                        .to_string(),
                });
            }
            previous_first = first;
            for p in data {
                if let Some(name) = text_at(p, "/project_name") {
                    targets.push(Target {
                        url: self.ui_link(&name, None),
                        kind: text_at(p, "/type"),
                        name,
                    });
                }
            }
            let total = json_at(&body, "/pagination/total").and_then(Value::as_u64);
            let done = data.len() < PROJECTS_PAGE_SIZE
                || total.is_some_and(|t| page * PROJECTS_PAGE_SIZE as u64 >= t);
            if done {
                break;
            }
        }
        Ok(targets)
    }

    async fn start_scan(&self, req: &ScanRequest) -> Result<Option<String>, VendorError> {
        let body = scan_start_body(req);
        let resp = self
            .http
            .post_json(SCAN_START_PATH, &body)
            .await
            .map_err(|e| self.project_error(&req.bind_to, e))?;
        let answer = self.json(&resp)?;
        if answer.get("error").and_then(Value::as_bool) == Some(true) {
            return Err(VendorError::Http {
                vendor: VENDOR,
                url: resp.url,
                status: resp.status,
                message: text_at(&answer, "/message")
                    .unwrap_or_else(|| "the scan was not started".to_string()),
            });
        }
        match text_at(&answer, "/scan_id") {
            Some(id) => Ok(Some(id)),
            None => Err(VendorError::Protocol {
                vendor: VENDOR,
                url: resp.url,
                detail: "the answer has no scan_id".to_string(),
            }),
        }
    }

    async fn scan_status(&self, scan_id: &str) -> Result<ScanStatus, VendorError> {
        let mut url = self
            .http
            .url(SCAN_STATUS_PATH, &[])
            .map_err(|e| self.http_error(e))?;
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push(scan_id);
        }
        let resp = self
            .http
            .send(reqwest::Method::GET, url, None)
            .await
            .map_err(|e| self.http_error(e))?;
        read_status(&resp)
    }

    async fn findings<'a>(
        &'a self,
        bind_to: &'a str,
        scan_id: Option<&'a str>,
    ) -> Result<Box<dyn FindingPages + 'a>, VendorError> {
        let mut query = vec![
            ("q", issues_query(bind_to)),
            ("pageSize", ISSUES_PAGE_SIZE.to_string()),
        ];
        if let Some(sid) = scan_id {
            query.push(("sid", sid.to_string()));
        }
        Ok(Box::new(IssuePages {
            vendor: self,
            query,
            walk: IssueWalk::new(self.ui_link(bind_to, scan_id)),
        }))
    }
}

/// Reads a 403/404 from the organization check: a JSON answer from CodeThreat means the
/// organization is unknown or not permitted (unless it talks about the token); anything else
/// (an HTML page, a bare 404) means the URL does not reach CodeThreat's API.
fn organization_check_error(
    url: &str,
    status: u16,
    body: &[u8],
    snippet: &str,
    organization: &str,
) -> VendorError {
    let json = serde_json::from_slice::<Value>(body).ok();
    match json {
        Some(_) => {
            let message = snippet.to_ascii_lowercase();
            // An organization refusal may mention the token too ("not permitted for this
            // token"); naming the organization is what tells it apart from a bad token.
            if status == 403
                && !message.contains("organization")
                && ["token", "unauthori", "expired", "jwt"]
                    .iter()
                    .any(|w| message.contains(w))
            {
                VendorError::TokenRejected {
                    vendor: VENDOR,
                    url: url.to_string(),
                    status,
                    hint: TOKEN_HINT,
                }
            } else {
                VendorError::OrganizationRejected {
                    vendor: VENDOR,
                    url: url.to_string(),
                    organization: organization.to_string(),
                    status,
                }
            }
        }
        None if status == 403 => VendorError::TokenRejected {
            vendor: VENDOR,
            url: url.to_string(),
            status,
            hint: TOKEN_HINT,
        },
        None => VendorError::WrongUrl {
            vendor: VENDOR,
            url: url.to_string(),
            detail: format!("HTTP {status} without a CodeThreat JSON answer"),
        },
    }
}

/// (P) The JSON body of a branch scan of a bound project. `environment` has no CodeThreat
/// field, so it is not sent.
fn scan_start_body(req: &ScanRequest) -> Value {
    let mut body = json!({
        "project": req.bind_to,
        "tags": req.tags,
        "metadata": req.metadata,
    });
    if let Some(branch) = &req.branch {
        body["branch"] = json!(branch);
    }
    body
}

/// The `q` parameter: base64 of `{"projectName": …}` (standard alphabet, padded, as `btoa`).
pub fn issues_query(project: &str) -> String {
    let q = json!({ "projectName": project }).to_string();
    base64::engine::general_purpose::STANDARD.encode(q)
}

/// The decoded `x-ct-pager` header.
#[derive(Debug, Clone, PartialEq)]
pub struct Pager {
    pub id: String,
    pub pages: u64,
}

/// Decodes `x-ct-pager`: base64 (standard or URL-safe, padded or not) of `{"id","pages"}`.
pub fn decode_pager(header: &str) -> Result<Pager, String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let header = header.trim();
    let bytes = [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(header).ok())
        .ok_or_else(|| format!("{PAGER_HEADER} is not base64"))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{PAGER_HEADER} is not base64 JSON: {e}"))?;
    let pages = match v.get("pages") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        None | Some(Value::Null) => Some(0),
        _ => None,
    }
    .ok_or_else(|| format!("{PAGER_HEADER} has no usable \"pages\""))?;
    let id = text_at(&v, "/id").unwrap_or_default();
    if pages > 0 && id.is_empty() {
        return Err(format!(
            "{PAGER_HEADER} announces {pages} pages but no \"id\""
        ));
    }
    Ok(Pager { id, pages })
}

/// (C/P) One CodeThreat issue → a normalized finding. Every field but the issue being a JSON
/// object is optional: a missing one leaves its part of the finding empty.
pub fn map_issue(raw: &RawValue, vendor_url: Option<&str>) -> Result<Finding, String> {
    let v: Value = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
    if !v.is_object() {
        return Err(format!("an issue is not a JSON object: {}", raw.get()));
    }
    let weakness = text_at(&v, "/issue_state/weakness_id");
    let title = text_at(&v, "/kb_fields/title/en")
        .or_else(|| text_at(&v, "/kb_fields/title"))
        .or_else(|| weakness.clone())
        .unwrap_or_else(|| "CodeThreat issue".to_string());
    let severity = text_at(&v, "/issue_state/severity")
        .and_then(|w| Severity::from_vendor_word(&w))
        .unwrap_or(Severity::Info);
    let status = text_at(&v, "/issue_state/status");
    Ok(Finding {
        vendor_id: text_at(&v, "/_id"),
        title,
        severity,
        vendor_status: status.clone(),
        cwe: json_at(&v, "/kb_fields/cwe").and_then(normalize_cwe),
        owasp: json_at(&v, "/kb_fields/owasp2021").and_then(first_text),
        rule_id: weakness,
        location: code_location(&v),
        description: text_at(&v, "/kb_fields/description/en")
            .or_else(|| text_at(&v, "/kb_fields/description")),
        remediation: text_at(&v, "/kb_fields/remediation/en")
            .or_else(|| text_at(&v, "/kb_fields/remediation")),
        vendor_url: vendor_url.map(str::to_string),
        vendor_first_seen: normalize_time(v.get("created_at")),
        vendor_last_seen: normalize_time(v.get("updated_at")),
        raw: raw.get().to_string(),
        verdict: status.as_deref().and_then(verdict),
    })
}

/// `89`, `"89"`, `"cwe-89"`, `"CWE-89: SQL Injection"`, `["CWE-89", …]` → `CWE-89`.
pub fn normalize_cwe(v: &Value) -> Option<String> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => return items.iter().find_map(normalize_cwe),
        _ => return None,
    };
    let upper = text.trim().to_ascii_uppercase();
    let digits: String = upper
        .trim_start_matches("CWE")
        .trim_start_matches(['-', ':', ' '])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (!digits.is_empty()).then(|| format!("CWE-{digits}"))
}

/// A text value, or the first text of an array (OWASP categories come both ways).
fn first_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Array(items) => items.iter().find_map(first_text),
        _ => None,
    }
}

/// `issue_state.location`, else `vulnerability_trace` (an object, or a list of trace steps of
/// which the first — where the tainted data enters — is taken).
fn code_location(v: &Value) -> Location {
    let candidates = [
        json_at(v, "/issue_state/location"),
        v.get("vulnerability_trace").map(|t| match t {
            Value::Array(steps) => steps.first().unwrap_or(t),
            _ => t,
        }),
    ];
    for c in candidates.into_iter().flatten() {
        if let Some(path) = text_at(c, "/file_path") {
            return Location::Code {
                path,
                start_line: line(c.get("start_line")),
                end_line: line(c.get("end_line")),
            };
        }
    }
    Location::Unknown
}

fn line(v: Option<&Value>) -> Option<u32> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// (C) A status answer → where the scan is. `end` is finished, `failed`/`error` failed (with
/// the last log line as the reason), `queued` waiting; any other word means in progress.
pub fn map_status(v: &Value) -> ScanStatus {
    let state = text_at(v, "/state").unwrap_or_default();
    match state.to_ascii_lowercase().as_str() {
        "end" => ScanStatus::Finished,
        "failed" | "error" => ScanStatus::Failed {
            message: v
                .get("logs")
                .and_then(Value::as_array)
                .and_then(|logs| logs.iter().rev().find_map(|l| text_at(l, "/message"))),
            state,
        },
        "queued" => ScanStatus::Queued,
        _ => ScanStatus::Running {
            progress: json_at(v, "/progress_data/progress")
                .and_then(Value::as_f64)
                .map(|p| p.clamp(0.0, 100.0) as u8),
        },
    }
}

/// A scan status answer → where the scan is: what [`Vendor::scan_status`] does with the body.
/// Public for the fuzz targets (`fuzz/`).
pub fn read_status(resp: &HttpResponse) -> Result<ScanStatus, VendorError> {
    Ok(map_status(&parse_json(resp)?))
}

/// (C/P) `issue_state.status` → what it means for the lifecycle. Words seen in CodeThreat's
/// clients: `Open`, `Accepted`, `ReCheck` (C); in its UI also `Fixed`, `False Positive` (P).
/// The other spellings are common ones of the same ideas. Case, `_`, `-`, apostrophes and
/// runs of spaces do not matter; an unknown word is `None` (read as "still there").
///
/// | words | verdict |
/// |---|---|
/// | `open`, `new`, `recheck`, `re-check`, `reopened`, `confirmed` | Active |
/// | `fixed`, `resolved`, `closed` | Resolved |
/// | `false positive`, `false_positive`, `falsepositive`, `not an issue` | FalsePositive |
/// | `accepted`, `risk accepted`, `ignored`, `wont fix`, `won't fix` | Accepted |
pub fn verdict(status: &str) -> Option<Verdict> {
    match normalize_word(status).as_str() {
        "open" | "new" | "recheck" | "re check" | "reopened" | "confirmed" => Some(Verdict::Active),
        "fixed" | "resolved" | "closed" => Some(Verdict::Resolved),
        "false positive" | "falsepositive" | "not an issue" => Some(Verdict::FalsePositive),
        "accepted" | "risk accepted" | "ignored" | "wont fix" => Some(Verdict::Accepted),
        _ => None,
    }
}

/// Lowercase, `_` and `-` as spaces, apostrophes dropped, runs of white space as one space.
fn normalize_word(word: &str) -> String {
    let spaced: String = word
        .chars()
        .filter(|c| !matches!(c, '\'' | '\u{2019}'))
        .map(|c| match c {
            '_' | '-' => ' ',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What one issues page held, as far as completeness is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PageFacts {
    /// Issues in the body (all of them, mapped or not).
    issues: u64,
    /// A digest of the page's issues ([`page_digest`]): the same issues, the same digest.
    digest: u64,
    /// The wrapped form's `pagination.total`, when the body has one.
    total: Option<u64>,
}

/// Where the walk goes after a page.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// Fetch `page=<page>` of the pager `pid` next.
    Next { pid: String, page: u64 },
    /// That was the last page.
    Done,
}

/// (ours) The completeness rules of one issues listing, kept free of I/O so each rule is a
/// unit test. A listing ends normally only when CodeThreat's own pager says it is whole:
///
/// - a first page as full as the page size asked for (500) must carry `x-ct-pager`; without
///   it nobody can tell whether more pages follow;
/// - a pager announcing more than [`MAX_ISSUE_PAGES`] pages (first body included) is taken
///   as one that never ends;
/// - every page before the last announced one is as full as the first page (the server's own
///   page size); an empty or short one there means issues went missing. The LAST announced
///   page may be short or empty. A server that counts the first body among `pages` ends with
///   an empty last page, and its real last page, the one before, may be short: so a short
///   page right before the last is allowed only if the last then comes back empty;
/// - no page may repeat an earlier one (the same issues: by `_id`, else by their text);
/// - in the wrapped form, the issues seen at the end equal `pagination.total`, and `total`
///   does not change during the walk.
///
/// Each rule broken is an `Err` with a detail naming the page and what was wrong.
#[derive(Debug)]
struct IssueListing {
    /// The page size asked for: a first page holding this many is full.
    requested: u64,
    max_pages: u64,
    pid: String,
    /// Further pages the pager announced (`page=1..=pages`).
    pages: u64,
    /// Issues on the first page: the server's page size.
    page_size: u64,
    /// The page right before the last was short: `(page, issues)`; the last must be empty.
    short_before_last: Option<(u64, u64)>,
    issues_seen: u64,
    total: Option<u64>,
    /// Digest of every non-empty page read → its page number (0 = the first body).
    digests: HashMap<u64, u64>,
}

impl IssueListing {
    fn new(requested: u64, max_pages: u64) -> IssueListing {
        IssueListing {
            requested,
            max_pages,
            pid: String::new(),
            pages: 0,
            page_size: 0,
            short_before_last: None,
            issues_seen: 0,
            total: None,
            digests: HashMap::new(),
        }
    }

    /// The first body and its pager header (`None` when the header is absent).
    fn first(&mut self, facts: PageFacts, pager: Option<Pager>) -> Result<Step, String> {
        self.count(0, facts)?;
        self.page_size = facts.issues;
        let Some(pager) = pager else {
            if facts.issues >= self.requested {
                return Err(format!(
                    "the first page holds {} issues, as many as the page size asked for, but \
                     has no {PAGER_HEADER} header saying whether more pages follow",
                    facts.issues
                ));
            }
            return self.done();
        };
        if pager.pages == 0 {
            return self.done();
        }
        if pager.pages >= self.max_pages {
            return Err(format!(
                "{PAGER_HEADER} announces {} further pages; a listing of more than {} pages \
                 is taken as a pager that never ends",
                pager.pages, self.max_pages
            ));
        }
        if facts.issues == 0 {
            return Err(format!(
                "the first page is empty but {PAGER_HEADER} announces {} further pages",
                pager.pages
            ));
        }
        self.pid = pager.id;
        self.pages = pager.pages;
        Ok(Step::Next {
            pid: self.pid.clone(),
            page: 1,
        })
    }

    /// Further page `page` (1-based) of the announced ones.
    fn further(&mut self, page: u64, facts: PageFacts) -> Result<Step, String> {
        let (pages, last) = (self.pages, page >= self.pages);
        if !last && facts.issues == 0 {
            return Err(format!("page {page} of {pages} was empty"));
        }
        // Every page but the last holds the page size; a later page holding more than the
        // first shows the first was cut short.
        if facts.issues > self.page_size {
            return Err(format!(
                "page {page} of {pages} holds {} issues, more than the {} of the first page: \
                 the first page was short",
                facts.issues, self.page_size
            ));
        }
        if !last && facts.issues < self.page_size {
            if page + 1 < pages {
                return Err(format!(
                    "page {page} of {pages} holds {} issues, fewer than the {} of the first \
                     page, and is not the last",
                    facts.issues, self.page_size
                ));
            }
            // Perhaps the real last page of a server counting the first body: see page `pages`.
            self.short_before_last = Some((page, facts.issues));
        }
        if let (true, Some((short, issues))) = (last, self.short_before_last) {
            if facts.issues > 0 {
                return Err(format!(
                    "page {short} of {pages} held {issues} issues, fewer than the {} of the \
                     first page, yet page {page} is not empty",
                    self.page_size
                ));
            }
        }
        self.count(page, facts)?;
        if last {
            self.done()
        } else {
            Ok(Step::Next {
                pid: self.pid.clone(),
                page: page + 1,
            })
        }
    }

    /// Repeats, totals, and the running count.
    fn count(&mut self, page: u64, facts: PageFacts) -> Result<(), String> {
        if facts.issues > 0 {
            if let Some(earlier) = self.digests.insert(facts.digest, page) {
                let earlier = match earlier {
                    0 => "the first page".to_string(),
                    n => format!("page {n}"),
                };
                return Err(format!(
                    "page {page} of {} repeats {earlier} (the same {} issues)",
                    self.pages, facts.issues
                ));
            }
        }
        if let Some(total) = facts.total {
            match self.total {
                Some(before) if before != total => {
                    return Err(format!(
                        "pagination.total changed from {before} to {total} during the listing"
                    ))
                }
                _ => self.total = Some(total),
            }
        }
        self.issues_seen += facts.issues;
        Ok(())
    }

    /// The listing ended: in the wrapped form, the count must match `total`.
    fn done(&self) -> Result<Step, String> {
        match self.total {
            Some(total) if total != self.issues_seen => Err(format!(
                "pagination.total announces {total} issues but the listing held {}",
                self.issues_seen
            )),
            _ => Ok(Step::Done),
        }
    }
}

/// A digest of a page's issues, to tell a repeated page from a new one.
/// Each issue counts by its `_id` when it has one (so a field that changes on every answer,
/// a timestamp say, does not hide a repeat), else by its whole text.
fn page_digest(findings: &[Finding]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    findings.len().hash(&mut h);
    for f in findings {
        f.vendor_id.as_deref().unwrap_or(&f.raw).hash(&mut h);
    }
    h.finish()
}

enum PagerState {
    First,
    Next { pid: String, page: u64 },
    Done,
}

/// Follows `x-ct-pager`, one HTTP page per [`FindingPages::next_page`] call, and ends with an
/// error unless [`IssueListing`] finds the listing whole.
struct IssuePages<'a> {
    vendor: &'a CodeThreat,
    query: Vec<(&'static str, String)>,
    walk: IssueWalk,
}

/// What the page loop does with each answer, apart from fetching it: where it is in the
/// listing, and the link every finding carries.
struct IssueWalk {
    link: Option<String>,
    state: PagerState,
    listing: IssueListing,
}

/// One issues body: the issues verbatim and the wrapped form's total.
struct IssueBody<'b> {
    items: Vec<&'b RawValue>,
    total: Option<u64>,
}

fn parse_issues(resp: &HttpResponse) -> Result<IssueBody<'_>, VendorError> {
    let protocol = |detail: String| VendorError::Protocol {
        vendor: VENDOR,
        url: resp.url.clone(),
        detail,
    };
    if resp.is_html() {
        return Err(protocol(
            "expected a JSON array of issues, got an HTML page".to_string(),
        ));
    }
    match serde_json::from_slice::<Vec<&RawValue>>(&resp.body) {
        Ok(items) => Ok(IssueBody { items, total: None }),
        Err(first) => {
            // The newer form wraps the array: `{"data": [...], "pagination": {"total"}}`.
            let wrapped: HashMap<&str, &RawValue> = serde_json::from_slice(&resp.body)
                .map_err(|_| protocol(format!("expected a JSON array of issues: {first}")))?;
            let items = wrapped
                .get(WRAPPED_ITEMS)
                .and_then(|r| serde_json::from_str::<Vec<&RawValue>>(r.get()).ok())
                .ok_or_else(|| protocol(format!("expected a JSON array of issues: {first}")))?;
            let total = serde_json::from_slice::<Value>(&resp.body)
                .ok()
                .and_then(|v| json_at(&v, WRAPPED_TOTAL).and_then(Value::as_u64));
            Ok(IssueBody { items, total })
        }
    }
}

impl IssueWalk {
    fn new(link: Option<String>) -> IssueWalk {
        IssueWalk {
            link,
            state: PagerState::First,
            listing: IssueListing::new(ISSUES_PAGE_SIZE as u64, MAX_ISSUE_PAGES),
        }
    }

    /// One page's answer: its findings, and the state moved to the next page (or `Done`).
    fn read(&mut self, resp: &HttpResponse) -> Result<Vec<Finding>, VendorError> {
        // Whatever happens below, this cursor reads no further unless the pager says so.
        let page = match std::mem::replace(&mut self.state, PagerState::Done) {
            PagerState::Done => return Ok(Vec::new()),
            PagerState::First => None,
            PagerState::Next { page, .. } => Some(page),
        };
        let body = parse_issues(resp)?;
        let total = body.total;
        let findings = body
            .items
            .into_iter()
            .map(|raw| {
                map_issue(raw, self.link.as_deref()).map_err(|detail| VendorError::Protocol {
                    vendor: VENDOR,
                    url: resp.url.clone(),
                    detail,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let facts = PageFacts {
            issues: findings.len() as u64,
            digest: page_digest(&findings),
            total,
        };
        let step = match page {
            None => {
                let pager = resp
                    .header(PAGER_HEADER)
                    .map(decode_pager)
                    .transpose()
                    .map_err(|detail| VendorError::Protocol {
                        vendor: VENDOR,
                        url: resp.url.clone(),
                        detail,
                    })?;
                self.listing.first(facts, pager)
            }
            Some(page) => self.listing.further(page, facts),
        }
        .map_err(|detail| VendorError::IncompleteListing {
            vendor: VENDOR,
            url: resp.url.clone(),
            detail,
        })?;
        if let Step::Next { pid, page } = step {
            self.state = PagerState::Next { pid, page };
        }
        Ok(findings)
    }

    fn done(&self) -> bool {
        matches!(self.state, PagerState::Done)
    }
}

/// Runs an issues listing's page loop over `responses` (the first body, then the pages the
/// pager asks for, in order) as [`Vendor::findings`] does, without HTTP: the findings of each
/// page read, and whether the listing ended whole. Public for the fuzz targets (`fuzz/`).
pub fn walk_issue_pages(
    responses: &[HttpResponse],
) -> Result<(Vec<Vec<Finding>>, bool), VendorError> {
    let mut walk = IssueWalk::new(None);
    let mut pages = Vec::new();
    for resp in responses {
        if walk.done() {
            break;
        }
        pages.push(walk.read(resp)?);
    }
    Ok((pages, walk.done()))
}

#[async_trait]
impl FindingPages for IssuePages<'_> {
    async fn next_page(&mut self) -> Result<Option<Vec<Finding>>, VendorError> {
        let mut query: Vec<(&str, &str)> =
            self.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page_text;
        match &self.walk.state {
            PagerState::Done => return Ok(None),
            PagerState::First => {}
            PagerState::Next { pid, page } => {
                page_text = page.to_string();
                query.push(("pid", pid.as_str()));
                query.push(("page", page_text.as_str()));
            }
        }
        let resp = self
            .vendor
            .http
            .get(ISSUES_PATH, &query)
            .await
            .map_err(|e| self.vendor.http_error(e))?;
        self.walk.read(&resp).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn full_issue_maps_field_by_field() {
        let text = r#"{"_id":"iss-1","kb_fields":{"title":{"en":"SQL Injection"},"cwe":89,"owasp2021":"A03:2021"},
            "issue_state":{"weakness_id":"sql_injection","severity":"critical","status":"Open",
            "location":{"file_path":"src/db.py","start_line":10,"end_line":"12"}},
            "created_at":"2026-11-01T10:00:00Z","updated_at":1732300000000}"#;
        let f = map_issue(&raw(text), Some("https://ct/issues?scan_id=s")).unwrap();
        assert_eq!(f.vendor_id.as_deref(), Some("iss-1"));
        assert_eq!(f.title, "SQL Injection");
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.vendor_status.as_deref(), Some("Open"));
        assert_eq!(f.cwe.as_deref(), Some("CWE-89"));
        assert_eq!(f.owasp.as_deref(), Some("A03:2021"));
        assert_eq!(f.rule_id.as_deref(), Some("sql_injection"));
        assert_eq!(
            f.location,
            Location::Code {
                path: "src/db.py".into(),
                start_line: Some(10),
                end_line: Some(12)
            }
        );
        assert_eq!(f.vendor_url.as_deref(), Some("https://ct/issues?scan_id=s"));
        assert_eq!(f.vendor_first_seen.as_deref(), Some("2026-11-01T10:00:00Z"));
        assert_eq!(f.vendor_last_seen.as_deref(), Some("2024-11-22T18:26:40Z"));
        assert_eq!(f.raw, text);
    }

    #[test]
    fn sparse_issue_falls_back_instead_of_failing() {
        let f = map_issue(
            &raw(r#"{"issue_state":{"weakness_id":"xss","severity":"bogus"},"vulnerability_trace":[{"file_path":"a.js","start_line":3}]}"#),
            None,
        )
        .unwrap();
        assert_eq!(f.title, "xss");
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(f.vendor_id, None);
        assert_eq!(
            f.location,
            Location::Code {
                path: "a.js".into(),
                start_line: Some(3),
                end_line: None
            }
        );
        let bare = map_issue(&raw("{}"), None).unwrap();
        assert_eq!(bare.location, Location::Unknown);
        assert!(map_issue(&raw("[1]"), None).is_err());
    }

    #[test]
    fn cwe_spellings_normalize_to_cwe_dash_number() {
        for v in [
            json!(89),
            json!("89"),
            json!("cwe-89"),
            json!("CWE-89: SQLi"),
            json!(["CWE-89"]),
        ] {
            assert_eq!(normalize_cwe(&v).as_deref(), Some("CWE-89"), "{v}");
        }
        assert_eq!(normalize_cwe(&json!("n/a")), None);
        assert_eq!(normalize_cwe(&json!(null)), None);
    }

    #[test]
    fn status_words_map_to_scan_states() {
        assert_eq!(map_status(&json!({"state":"end"})), ScanStatus::Finished);
        assert_eq!(map_status(&json!({"state":"queued"})), ScanStatus::Queued);
        assert_eq!(
            map_status(&json!({"state":"running","progress_data":{"progress":42}})),
            ScanStatus::Running { progress: Some(42) }
        );
        assert_eq!(
            map_status(
                &json!({"state":"error","logs":[{"message":"a"},{"message":"out of disk"}]})
            ),
            ScanStatus::Failed {
                state: "error".into(),
                message: Some("out of disk".into())
            }
        );
    }

    #[test]
    fn pager_header_decodes_and_missing_pages_mean_one_body() {
        let h = base64::engine::general_purpose::STANDARD.encode(r#"{"id":"p1","pages":3}"#);
        assert_eq!(
            decode_pager(&h).unwrap(),
            Pager {
                id: "p1".into(),
                pages: 3
            }
        );
        let h = base64::engine::general_purpose::STANDARD.encode(r#"{"id":"p1","pages":0}"#);
        assert_eq!(decode_pager(&h).unwrap().pages, 0);
        assert!(decode_pager("%%%").is_err());
    }

    #[test]
    fn issues_query_is_base64_of_the_project_json() {
        let q = issues_query("shop \"web\"");
        let decoded = base64::engine::general_purpose::STANDARD.decode(q).unwrap();
        let v: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(v, json!({"projectName": "shop \"web\""}));
    }

    #[test]
    fn organization_check_tells_org_token_and_url_problems_apart() {
        let org = organization_check_error(
            "u",
            404,
            br#"{"error":true,"message":"organization acme not found"}"#,
            "organization acme not found",
            "acme",
        );
        assert!(matches!(
            org,
            VendorError::OrganizationRejected { status: 404, .. }
        ));
        let org403 = organization_check_error(
            "u",
            403,
            br#"{"message":"not a member of acme"}"#,
            "not a member of acme",
            "acme",
        );
        assert!(matches!(org403, VendorError::OrganizationRejected { .. }));
        let org_for_token = organization_check_error(
            "u",
            403,
            br#"{"message":"organization \"x\" is unknown or not permitted for this token"}"#,
            "organization \"x\" is unknown or not permitted for this token",
            "acme",
        );
        assert!(matches!(
            org_for_token,
            VendorError::OrganizationRejected { .. }
        ));
        let token = organization_check_error(
            "u",
            403,
            br#"{"message":"Token expired"}"#,
            "Token expired",
            "acme",
        );
        assert!(matches!(token, VendorError::TokenRejected { .. }));
        let url = organization_check_error("u", 404, b"<html>Not Found</html>", "", "acme");
        assert!(matches!(url, VendorError::WrongUrl { .. }));
    }

    fn facts(issues: u64, digest: u64) -> PageFacts {
        PageFacts {
            issues,
            digest,
            total: None,
        }
    }

    fn pager(pages: u64) -> Option<Pager> {
        Some(Pager {
            id: "pg".into(),
            pages,
        })
    }

    /// Walks a listing whose first page holds `first` issues under `pager`, then the further
    /// pages in `further` (issue counts; each page's digest is its page number).
    fn walk(first: PageFacts, pager: Option<Pager>, further: &[PageFacts]) -> Result<(), String> {
        let mut listing = IssueListing::new(500, 100);
        let mut step = listing.first(first, pager)?;
        let mut pages = further.iter();
        while let Step::Next { page, .. } = step {
            let facts = pages
                .next()
                .expect("the walk asks for no page the test lacks");
            step = listing.further(page, *facts)?;
        }
        assert!(pages.next().is_none(), "the walk stopped early");
        Ok(())
    }

    #[test]
    fn honest_listing_walks_every_announced_page_and_ends() {
        walk(facts(500, 0), pager(2), &[facts(500, 1), facts(200, 2)]).unwrap();
        walk(facts(500, 0), pager(0), &[]).unwrap();
        walk(facts(120, 0), None, &[]).unwrap();
        walk(facts(0, 0), None, &[]).unwrap();
        // A server whose page size is below the one asked for pages just as well.
        walk(facts(100, 0), pager(2), &[facts(100, 1), facts(100, 2)]).unwrap();
    }

    #[test]
    fn full_first_page_without_pager_header_is_incomplete() {
        let err = walk(facts(500, 0), None, &[]).unwrap_err();
        assert_eq!(
            err,
            "the first page holds 500 issues, as many as the page size asked for, but has no \
             x-ct-pager header saying whether more pages follow"
        );
    }

    #[test]
    fn empty_page_before_the_last_announced_one_is_incomplete() {
        let err = walk(
            facts(500, 0),
            pager(4),
            &[facts(500, 1), facts(500, 2), facts(0, 3)],
        )
        .unwrap_err();
        assert_eq!(err, "page 3 of 4 was empty");
        let err = walk(facts(0, 0), pager(2), &[]).unwrap_err();
        assert_eq!(
            err,
            "the first page is empty but x-ct-pager announces 2 further pages"
        );
    }

    #[test]
    fn empty_or_short_last_announced_page_ends_the_listing() {
        // A server that counts the first body among `pages` answers the last one empty.
        walk(facts(500, 0), pager(2), &[facts(500, 1), facts(0, 2)]).unwrap();
        walk(facts(500, 0), pager(1), &[facts(3, 1)]).unwrap();
    }

    #[test]
    fn short_page_before_the_last_announced_one_is_incomplete() {
        let err = walk(
            facts(500, 0),
            pager(4),
            &[facts(500, 1), facts(250, 2), facts(500, 3)],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "page 2 of 4 holds 250 issues, fewer than the 500 of the first page, and is not the last"
        );
        // Right before the last, a short page is judged by the last: it must be empty.
        let err = walk(facts(500, 0), pager(2), &[facts(250, 1), facts(200, 2)]).unwrap_err();
        assert_eq!(
            err,
            "page 1 of 2 held 250 issues, fewer than the 500 of the first page, yet page 2 is \
             not empty"
        );
    }

    #[test]
    fn server_counting_the_first_body_among_pages_reads_as_complete() {
        // 1,200 issues as 500 + 500 + 200 with `pages: 3`: page 3 is past the data.
        walk(
            facts(500, 0),
            pager(3),
            &[facts(500, 1), facts(200, 2), facts(0, 3)],
        )
        .unwrap();
        // 1,000 issues as 500 + 500 with `pages: 2`.
        walk(facts(500, 0), pager(2), &[facts(500, 1), facts(0, 2)]).unwrap();
    }

    #[test]
    fn page_repeating_an_earlier_page_is_incomplete() {
        let err = walk(facts(500, 7), pager(3), &[facts(500, 7)]).unwrap_err();
        assert_eq!(
            err,
            "page 1 of 3 repeats the first page (the same 500 issues)"
        );
        let err = walk(facts(500, 0), pager(3), &[facts(500, 1), facts(500, 1)]).unwrap_err();
        assert_eq!(err, "page 2 of 3 repeats page 1 (the same 500 issues)");
        // A looping pager comes back to an earlier page, not only the previous one.
        let err = walk(
            facts(500, 0),
            pager(5),
            &[facts(500, 1), facts(500, 2), facts(500, 0)],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "page 3 of 5 repeats the first page (the same 500 issues)"
        );
    }

    #[test]
    fn pager_announcing_more_than_the_cap_is_incomplete() {
        let err = walk(facts(500, 0), pager(100), &[]).unwrap_err();
        assert_eq!(
            err,
            "x-ct-pager announces 100 further pages; a listing of more than 100 pages is taken \
             as a pager that never ends"
        );
        walk(
            facts(500, 0),
            pager(99),
            &(1..=99).map(|p| facts(500, p)).collect::<Vec<_>>(),
        )
        .unwrap();
        const { assert!(MAX_ISSUE_PAGES == 10_000) };
    }

    #[test]
    fn wrapped_total_must_match_the_issues_seen() {
        let total = |issues, digest, total| PageFacts {
            issues,
            digest,
            total: Some(total),
        };
        walk(total(500, 0, 700), pager(1), &[total(200, 1, 700)]).unwrap();
        walk(total(40, 0, 40), None, &[]).unwrap();
        let err = walk(total(500, 0, 1200), pager(1), &[total(200, 1, 1200)]).unwrap_err();
        assert_eq!(
            err,
            "pagination.total announces 1200 issues but the listing held 700"
        );
        let err = walk(total(40, 0, 41), None, &[]).unwrap_err();
        assert_eq!(
            err,
            "pagination.total announces 41 issues but the listing held 40"
        );
        let err = walk(total(500, 0, 700), pager(1), &[total(200, 1, 900)]).unwrap_err();
        assert_eq!(
            err,
            "pagination.total changed from 700 to 900 during the listing"
        );
    }

    fn response(body: &str) -> HttpResponse {
        HttpResponse {
            url: "http://ct/api/scanlog/issues".into(),
            status: 200,
            headers: Default::default(),
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn issues_body_reads_the_plain_and_the_wrapped_form() {
        let plain = response(r#"[{"_id":"a"},{"_id":"b"}]"#);
        let body = parse_issues(&plain).unwrap();
        assert_eq!((body.items.len(), body.total), (2, None));
        let wrapped =
            response(r#"{"data":[{"_id":"a"}],"pagination":{"page_size":100,"total":1234}}"#);
        let body = parse_issues(&wrapped).unwrap();
        assert_eq!((body.items.len(), body.total), (1, Some(1234)));
        let no_total = response(r#"{"data":[]}"#);
        assert_eq!(parse_issues(&no_total).unwrap().total, None);
        assert!(parse_issues(&response(r#"{"items":[]}"#)).is_err());
    }

    #[test]
    fn page_digest_tells_same_issues_from_different_ones() {
        let page = |items: &[&str]| -> Vec<Finding> {
            items
                .iter()
                .map(|text| map_issue(&raw(text), None).unwrap())
                .collect()
        };
        let a = page(&[r#"{"_id":"a"}"#, r#"{"_id":"b"}"#]);
        let b = page(&[r#"{"_id":"a"}"#, r#"{"_id":"c"}"#]);
        assert_eq!(page_digest(&a), page_digest(&a));
        assert_ne!(page_digest(&a), page_digest(&b));
        // The same issues answered again with a fresher timestamp are still a repeat.
        let again = page(&[
            r#"{"_id":"a","updated_at":1}"#,
            r#"{"_id":"b","updated_at":2}"#,
        ]);
        assert_eq!(page_digest(&a), page_digest(&again));
        // Without ids, the text tells them apart.
        let anonymous = page(&[r#"{"x":1}"#]);
        assert_ne!(page_digest(&anonymous), page_digest(&page(&[r#"{"x":2}"#])));
    }

    #[test]
    fn status_words_map_to_verdicts() {
        let table: &[(&str, Option<Verdict>)] = &[
            ("Open", Some(Verdict::Active)),
            ("new", Some(Verdict::Active)),
            ("ReCheck", Some(Verdict::Active)),
            ("re-check", Some(Verdict::Active)),
            ("Reopened", Some(Verdict::Active)),
            ("CONFIRMED", Some(Verdict::Active)),
            ("Fixed", Some(Verdict::Resolved)),
            ("resolved", Some(Verdict::Resolved)),
            ("Closed", Some(Verdict::Resolved)),
            ("False Positive", Some(Verdict::FalsePositive)),
            ("false_positive", Some(Verdict::FalsePositive)),
            ("FalsePositive", Some(Verdict::FalsePositive)),
            ("Not an issue", Some(Verdict::FalsePositive)),
            ("Accepted", Some(Verdict::Accepted)),
            ("Risk Accepted", Some(Verdict::Accepted)),
            ("ignored", Some(Verdict::Accepted)),
            ("Won't Fix", Some(Verdict::Accepted)),
            ("wont_fix", Some(Verdict::Accepted)),
            ("  false   positive ", Some(Verdict::FalsePositive)),
            ("In Review", None),
            ("", None),
        ];
        for (word, expected) in table {
            assert_eq!(verdict(word), *expected, "{word:?}");
        }
    }

    #[test]
    fn issue_status_becomes_the_findings_verdict() {
        let f = map_issue(&raw(r#"{"issue_state":{"status":"False Positive"}}"#), None).unwrap();
        assert_eq!(f.vendor_status.as_deref(), Some("False Positive"));
        assert_eq!(f.verdict, Some(Verdict::FalsePositive));
        let f = map_issue(&raw(r#"{"issue_state":{"status":"Frobbed"}}"#), None).unwrap();
        assert_eq!(f.verdict, None);
        assert_eq!(map_issue(&raw("{}"), None).unwrap().verdict, None);
    }
}
