//! The CodeThreat contract (`docs/vendors/codethreat.md`), every C and P line, under
//! `/codethreat`.
//!
//! Each `POST /api/scan/start` binds a new scan to the project's next generation of data
//! (the first scan sees generation 0); listing issues with `sid` returns that scan's
//! generation, without `sid` the latest scan's.

use super::data::{self, SimFinding};
use super::faults::FaultKind;
use super::{json_bytes, json_error, lock, Deception, Shared};
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// The largest page served, whatever the client asks for.
const MAX_PAGE_SIZE: u32 = 1000;
const DEFAULT_PAGE_SIZE: u32 = 100;
/// What an `endless_pager` fault's `x-ct-pager` announces: far more pages than any listing.
const ENDLESS_PAGES: u64 = 1_000_000;

/// Projects and scans the simulated tenant holds.
pub(crate) struct CtState {
    projects: Vec<CtProject>,
    scans: HashMap<String, CtScan>,
    scans_started: u64,
}

struct CtProject {
    name: String,
    /// Data number: `project-N` is N; projects added at run time continue after the last.
    number: u32,
    kind: String,
    description: String,
    tags: Vec<String>,
    /// Generation the next scan gets.
    next_generation: u64,
    latest_scan: Option<String>,
}

#[derive(Clone)]
struct CtScan {
    project: u32,
    project_name: String,
    generation: u64,
    branch: Option<String>,
    /// P: the `metadata` object of a JSON scan start, kept for tests to read back.
    metadata: serde_json::Map<String, serde_json::Value>,
    started: Instant,
    started_epoch_ms: i64,
}

/// A scan as the simulated tenant received it, for tests ([`super::Simulator::codethreat_scans`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StartedScan {
    pub scan_id: String,
    pub project: String,
    pub branch: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl CtState {
    /// Every scan started so far, oldest first.
    pub(crate) fn started_scans(&self) -> Vec<StartedScan> {
        let mut scans: Vec<(&String, &CtScan)> = self.scans.iter().collect();
        scans.sort_by_key(|(_, scan)| scan.started);
        scans
            .into_iter()
            .map(|(id, scan)| StartedScan {
                scan_id: id.clone(),
                project: scan.project_name.clone(),
                branch: scan.branch.clone(),
                metadata: scan.metadata.clone(),
            })
            .collect()
    }

    pub(crate) fn new(projects: u32) -> CtState {
        CtState {
            projects: (1..=projects)
                .map(|n| CtProject {
                    name: data::project_name(n),
                    number: n,
                    kind: "github".to_string(),
                    description: format!("Simulated project {n}"),
                    tags: Vec::new(),
                    next_generation: 0,
                    latest_scan: None,
                })
                .collect(),
            scans: HashMap::new(),
            scans_started: 0,
        }
    }

    fn project(&self, name: &str) -> Option<&CtProject> {
        self.projects.iter().find(|p| p.name == name)
    }

    /// The generation a listing without `sid` shows: the latest scan's, or the baseline.
    fn latest_generation(&self, project: &CtProject) -> u64 {
        project.next_generation.saturating_sub(1)
    }
}

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/organization", get(organization))
        .route("/api/project", get(project))
        .route("/api/project/add", post(project_add))
        .route("/api/projects", get(projects))
        .route("/api/scan/start", post(scan_start))
        .route("/api/integration/github/start", post(github_start))
        .route("/api/scan/status/{sid}", get(scan_status))
        .route("/api/plugins/helper", get(plugins_helper))
        .route(
            "/api/scanlog/issues",
            get(issues_paged).post(issues_filtered),
        )
}

/// Token, then organization, as the contract orders the checks.
pub(crate) async fn authorize(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if s.bearer_valid(req.headers()) != Some(true) {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "token rejected: send Authorization: Bearer <access token> (generate one under \
             Settings → Access Token)",
        );
    }
    let organization = req
        .headers()
        .get("x-ct-organization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if organization != s.opts.organization {
        let message = if organization.is_empty() {
            "organization missing: send the x-ct-organization header with your organization name"
                .to_string()
        } else {
            format!(
                "organization \"{organization}\" is unknown or not permitted for this token \
                 (x-ct-organization must match the organization name exactly)"
            )
        };
        return json_error(StatusCode::FORBIDDEN, &message);
    }
    next.run(req).await
}

type Params = Query<HashMap<String, String>>;

async fn organization(State(s): State<Arc<Shared>>, Query(q): Params) -> Response {
    match q.get("key") {
        Some(key) if *key == s.opts.organization => Json(json!({
            "error": false,
            "result": { "name": key, "key": key, "plan": "simulator" }
        }))
        .into_response(),
        Some(key) => json_error(
            StatusCode::NOT_FOUND,
            &format!("organization \"{key}\" not found"),
        ),
        None => json_error(StatusCode::BAD_REQUEST, "missing query parameter: key"),
    }
}

async fn project(State(s): State<Arc<Shared>>, Query(q): Params) -> Response {
    let Some(key) = q.get("key") else {
        return json_error(StatusCode::BAD_REQUEST, "missing query parameter: key");
    };
    let state = lock(&s.codethreat);
    match state.project(key) {
        Some(p) => Json(json!({
            "error": false,
            "type": p.kind,
            "project_name": p.name,
            "description": p.description,
            "tags": p.tags,
            "result": { "type": p.kind, "project_name": p.name },
        }))
        .into_response(),
        None => project_not_found(key),
    }
}

fn project_not_found(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({
            "error": true,
            "code": 404,
            "message": format!("project \"{name}\" not found"),
        })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct NewProject {
    project_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: Vec<String>,
}

async fn project_add(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let new: NewProject = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("expected JSON {{\"project_name\", \"description\", \"tags\"}}: {e}"),
            )
        }
    };
    let mut state = lock(&s.codethreat);
    if new.project_name.trim().is_empty() {
        return json_error(StatusCode::BAD_REQUEST, "project_name is empty");
    }
    if state.project(&new.project_name).is_some() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": true,
                "code": 400,
                "message": format!("project \"{}\" already exists", new.project_name),
            })),
        )
            .into_response();
    }
    let number = state.projects.iter().map(|p| p.number).max().unwrap_or(0) + 1;
    state.projects.push(CtProject {
        name: new.project_name,
        number,
        kind: "manual".to_string(),
        description: new.description,
        tags: new.tags,
        next_generation: 0,
        latest_scan: None,
    });
    Json(json!({ "error": false, "result": { "message": "successfull" } })).into_response()
}

/// P: a project listing, `GET /api/projects?page=<i>&pageSize=<n>`, pages numbered from 1.
async fn projects(State(s): State<Arc<Shared>>, Query(q): Params) -> Response {
    let (page, size) = match page_params(&q) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let state = lock(&s.codethreat);
    let start = ((page - 1) as usize).saturating_mul(size as usize);
    let data: Vec<_> = state
        .projects
        .iter()
        .skip(start)
        .take(size as usize)
        .map(|p| json!({ "project_name": p.name, "type": p.kind, "description": p.description }))
        .collect();
    Json(json!({
        "data": data,
        "pagination": { "page": page, "page_size": size, "total": state.projects.len() }
    }))
    .into_response()
}

/// `page` (from 1, default 1) and `pageSize` (default 100, capped at 1000).
#[allow(clippy::result_large_err)]
fn page_params(q: &HashMap<String, String>) -> Result<(u32, u32), Response> {
    let number = |key: &str, default: u32| -> Result<u32, Response> {
        match q.get(key) {
            None => Ok(default),
            Some(v) => v.parse::<u32>().map_err(|_| {
                json_error(
                    StatusCode::BAD_REQUEST,
                    &format!("{key} must be a whole number, not \"{v}\""),
                )
            }),
        }
    };
    let page = number("page", 1)?.max(1);
    let size = number("pageSize", DEFAULT_PAGE_SIZE)?.clamp(1, MAX_PAGE_SIZE);
    Ok((page, size))
}

#[derive(Deserialize)]
struct ScanRequest {
    project: String,
    branch: Option<String>,
    /// P: an object; anything else is refused as a malformed request.
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
}

/// Multipart (CodeThreat's CLI uploading a zip) or JSON (scansync on a bound project).
async fn scan_start(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let request = if content_type.starts_with("multipart/form-data") {
        let Some(boundary) = multipart_boundary(content_type) else {
            return json_error(StatusCode::BAD_REQUEST, "multipart body without a boundary");
        };
        let fields = multipart_fields(&body, &boundary);
        let Some(project) = fields.get("project") else {
            return json_error(StatusCode::BAD_REQUEST, "missing form field: project");
        };
        ScanRequest {
            project: project.clone(),
            branch: fields.get("branch").cloned(),
            metadata: serde_json::Map::new(),
        }
    } else {
        match serde_json::from_slice::<ScanRequest>(&body) {
            Ok(r) => r,
            Err(e) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "expected JSON {{\"project\", \"branch\", …}} or a multipart upload: {e}"
                    ),
                )
            }
        }
    };
    start_scan(&s, request)
}

async fn github_start(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<ScanRequest>(&body) {
        Ok(r) => start_scan(&s, r),
        Err(e) => json_error(
            StatusCode::BAD_REQUEST,
            &format!("expected JSON {{\"project\", \"branch\", …}}: {e}"),
        ),
    }
}

fn start_scan(s: &Shared, request: ScanRequest) -> Response {
    let mut state = lock(&s.codethreat);
    state.scans_started += 1;
    let counter = state.scans_started;
    let Some(project) = state
        .projects
        .iter_mut()
        .find(|p| p.name == request.project)
    else {
        return project_not_found(&request.project);
    };
    let h = data::hash(&[0x5CA7, s.opts.seed, counter]);
    let sid = format!("{:016x}{:08x}", h, data::splitmix64(h) as u32);
    let scan = CtScan {
        project: project.number,
        project_name: project.name.clone(),
        generation: project.next_generation,
        branch: request.branch,
        metadata: request.metadata,
        started: Instant::now(),
        started_epoch_ms: chrono::Utc::now().timestamp_millis(),
    };
    project.next_generation += 1;
    project.latest_scan = Some(sid.clone());
    state.scans.insert(sid.clone(), scan);
    Json(json!({ "error": false, "scan_id": sid })).into_response()
}

/// Where a scan stands: `queued` for the first tenth of `--scan-seconds`, then `running`
/// with a progress percentage, then `end`.
fn scan_phase(scan: &CtScan, scan_seconds: f64) -> (&'static str, u32, Option<i64>) {
    let elapsed = scan.started.elapsed().as_secs_f64();
    if elapsed >= scan_seconds {
        let ended = scan.started_epoch_ms + (scan_seconds * 1000.0) as i64;
        ("end", 100, Some(ended))
    } else if elapsed < scan_seconds / 10.0 {
        ("queued", 0, None)
    } else {
        let progress = ((elapsed / scan_seconds) * 100.0) as u32;
        ("running", progress.min(99), None)
    }
}

fn find_scan(s: &Shared, sid: &str) -> Option<CtScan> {
    lock(&s.codethreat).scans.get(sid).cloned()
}

fn severities_json(counts: [u32; 4]) -> serde_json::Value {
    json!({ "critical": counts[0], "high": counts[1], "medium": counts[2], "low": counts[3] })
}

fn risk_score(counts: [u32; 4]) -> u32 {
    (counts[0] * 10 + counts[1] * 5 + counts[2] * 2 + counts[3]).min(100)
}

async fn scan_status(State(s): State<Arc<Shared>>, Path(sid): Path<String>) -> Response {
    let Some(scan) = find_scan(&s, &sid) else {
        return json_error(StatusCode::NOT_FOUND, &format!("scan \"{sid}\" not found"));
    };
    let (state, progress, ended_at) = scan_phase(&scan, s.opts.scan_seconds);
    let counts = s.index(scan.project, scan.generation).severities;
    let started = iso_ms(scan.started_epoch_ms);
    let mut logs = vec![json!({
        "logType": "information", "message": "INFO110: Scan is starting...", "create_date": started
    })];
    if let Some(ended) = ended_at {
        logs.push(json!({
            "logType": "information", "message": "INFO200: Scan completed.", "create_date": iso_ms(ended)
        }));
    }
    Json(json!({
        "scan_id": sid,
        "project_name": scan.project_name,
        "branch": scan.branch,
        "state": state,
        "progress_data": { "progress": progress },
        "severities": severities_json(counts),
        "sast_severities": severities_json(counts),
        "sca_severities": severities_json([0; 4]),
        "weaknessesArr": [],
        "riskscore": { "score": risk_score(counts) },
        "started_at": scan.started_epoch_ms,
        "ended_at": ended_at,
        "logs": logs,
    }))
    .into_response()
}

fn iso_ms(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn plugins_helper(State(s): State<Arc<Shared>>, Query(q): Params) -> Response {
    let Some(sid) = q.get("sid") else {
        return json_error(StatusCode::BAD_REQUEST, "missing query parameter: sid");
    };
    let Some(scan) = find_scan(&s, sid) else {
        return json_error(StatusCode::NOT_FOUND, &format!("scan \"{sid}\" not found"));
    };
    let (state, _, ended_at) = scan_phase(&scan, s.opts.scan_seconds);
    let index = s.index(scan.project, scan.generation);
    Json(json!({
        "report": {
            "scan_id": sid,
            "project_name": scan.project_name,
            "branch": scan.branch,
            "state": state,
            "total": index.total,
            "severities": severities_json(index.severities),
            "riskscore": { "score": risk_score(index.severities) },
            "started_at": scan.started_epoch_ms,
            "ended_at": ended_at,
        }
    }))
    .into_response()
}

/// The project and generation a listing reads, from a project name and an optional scan id.
#[allow(clippy::result_large_err)]
fn resolve_listing(
    s: &Shared,
    project_name: &str,
    sid: Option<&str>,
) -> Result<(u32, u64), Response> {
    let state = lock(&s.codethreat);
    let Some(project) = state.project(project_name) else {
        return Err(project_not_found(project_name));
    };
    match sid {
        Some(sid) => match state.scans.get(sid) {
            Some(scan) if scan.project == project.number => Ok((project.number, scan.generation)),
            Some(_) => Err(json_error(
                StatusCode::NOT_FOUND,
                &format!("scan \"{sid}\" does not belong to project \"{project_name}\""),
            )),
            None => Err(json_error(
                StatusCode::NOT_FOUND,
                &format!("scan \"{sid}\" not found"),
            )),
        },
        None => Ok((project.number, state.latest_generation(project))),
    }
}

fn decode_query(q: &str) -> Option<serde_json::Value> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let bytes = STANDARD
        .decode(q)
        .or_else(|_| URL_SAFE.decode(q))
        .or_else(|_| URL_SAFE_NO_PAD.decode(q))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The pager id names the listing it pages (project, generation, page size), so further pages
/// stay consistent even if a new scan starts during the walk, and no pager state is kept. An
/// `endless_pager` fault's id ends in `-loop`: its pages past the data start over.
fn pager_id(project: u32, generation: u64, size: u32, endless: bool) -> String {
    let tail = if endless { "-loop" } else { "" };
    format!("pg-{project}-{generation}-{size}{tail}")
}

/// `(project, generation, size, endless)` from a pager id.
fn parse_pager_id(pid: &str) -> Option<(u32, u64, u32, bool)> {
    let (pid, endless) = match pid.strip_suffix("-loop") {
        Some(p) => (p, true),
        None => (pid, false),
    };
    let mut parts = pid.strip_prefix("pg-")?.split('-');
    let project = parts.next()?.parse().ok()?;
    let generation = parts.next()?.parse().ok()?;
    let size = parts.next()?.parse().ok()?;
    parts
        .next()
        .is_none()
        .then_some((project, generation, size, endless))
}

/// C form: `GET /api/scanlog/issues?q=<base64 {"projectName"}>&pageSize=<n>[&sid=]`.
///
/// Our reading of the contract's "further pages … for i = 1..pages": the first response is
/// page 0 (items 0..n), and `pages` in `x-ct-pager` counts the FURTHER pages, so
/// `page=i` for i in 1..=pages returns items i·n..(i+1)·n, and `pages == 0` means the first
/// body was everything. This is the one place to correct if CodeThreat counts differently.
///
/// Deceptive faults act here: `no_pager` drops the header from the first page,
/// `endless_pager` announces [`ENDLESS_PAGES`] and starts the data over past its end,
/// `empty_page` / `short_page` / `repeat_page` answer a further page with no issues, its
/// first half, or the previous page's issues.
async fn issues_paged(
    State(s): State<Arc<Shared>>,
    Extension(Deception(deception)): Extension<Deception>,
    Query(q): Params,
) -> Response {
    let Some(query) = q.get("q") else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "missing query parameter q (base64 of {\"projectName\": …})",
        );
    };
    let Some(project_name) = decode_query(query)
        .as_ref()
        .and_then(|v| v.get("projectName"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
    else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "q must be base64 of a JSON object with projectName",
        );
    };
    let (project, generation, size, page, endless) = if let Some(pid) = q.get("pid") {
        let Some((project, generation, size, endless)) = parse_pager_id(pid) else {
            return json_error(StatusCode::NOT_FOUND, &format!("pager \"{pid}\" not found"));
        };
        match resolve_listing(&s, &project_name, None) {
            Ok((p, _)) if p == project => {}
            Ok(_) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    &format!("pager \"{pid}\" does not page project \"{project_name}\""),
                )
            }
            Err(r) => return r,
        }
        let page = match q.get("page").map(|v| v.parse::<u64>()) {
            None => 1,
            Some(Ok(p)) => p,
            Some(Err(_)) => {
                return json_error(StatusCode::BAD_REQUEST, "page must be a whole number")
            }
        };
        (project, generation, size, page, endless)
    } else {
        let size = match page_params(&q) {
            Ok((_, size)) => size,
            Err(r) => return r,
        };
        let (project, generation) =
            match resolve_listing(&s, &project_name, q.get("sid").map(String::as_str)) {
                Ok(v) => v,
                Err(r) => return r,
            };
        let endless = deception == Some(FaultKind::EndlessPager);
        (project, generation, size, 0, endless)
    };
    let total = s.index(project, generation).total as u64;
    let further_pages = if total == 0 {
        0
    } else {
        (total - 1) / size as u64
    };
    // Which page of the data this answer serves.
    let mut served = page;
    if endless {
        served %= further_pages + 1;
    }
    if deception == Some(FaultKind::RepeatPage) {
        served = served.saturating_sub(1);
    }
    let (mut findings, _) = s.page(
        &[(project, generation)],
        served.saturating_mul(size as u64),
        size,
    );
    match deception {
        Some(FaultKind::EmptyPage) => findings.clear(),
        Some(FaultKind::ShortPage) => findings.truncate(findings.len() / 2),
        _ => {}
    }
    let pager = json!({
        "id": pager_id(project, generation, size, endless),
        "pages": if endless { ENDLESS_PAGES } else { further_pages },
        "total": total,
        "page": page,
        "pageSize": size,
    });
    let mut body = Vec::with_capacity(findings.len() * 600 + 2);
    write_issues(&mut body, &findings, &project_name);
    let mut response = json_bytes(StatusCode::OK, body);
    let encoded = base64::engine::general_purpose::STANDARD.encode(pager.to_string());
    if let Ok(value) = HeaderValue::from_str(&encoded) {
        if deception != Some(FaultKind::NoPager) {
            response.headers_mut().insert("x-ct-pager", value);
        }
    }
    response
}

#[derive(Deserialize, Default)]
struct IssueFilter {
    #[serde(rename = "projectName")]
    project_name: Option<String>,
    sid: Option<String>,
}

/// Newer C form: `POST /api/scanlog/issues?pageSize=<n>&page=<i>` with a JSON filter
/// (`{}` = every project at its latest scan). Pages are numbered from 1 (our reading).
async fn issues_filtered(State(s): State<Arc<Shared>>, Query(q): Params, body: Bytes) -> Response {
    let filter: IssueFilter = if body.iter().all(u8::is_ascii_whitespace) {
        IssueFilter::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(f) => f,
            Err(e) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    &format!("the filter must be a JSON object: {e}"),
                )
            }
        }
    };
    let (page, size) = match page_params(&q) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let parts: Vec<(u32, u64, String)> = match &filter.project_name {
        Some(name) => match resolve_listing(&s, name, filter.sid.as_deref()) {
            Ok((p, g)) => vec![(p, g, name.clone())],
            Err(r) => return r,
        },
        None => {
            let state = lock(&s.codethreat);
            state
                .projects
                .iter()
                .map(|p| (p.number, state.latest_generation(p), p.name.clone()))
                .collect()
        }
    };
    let listing: Vec<(u32, u64)> = parts.iter().map(|(p, g, _)| (*p, *g)).collect();
    let (findings, total) = s.page(&listing, (page as u64 - 1) * size as u64, size);
    let mut body = Vec::with_capacity(findings.len() * 600 + 100);
    body.extend_from_slice(b"{\"data\":");
    let mut start = 0;
    let mut first = true;
    body.push(b'[');
    for (project, _, name) in &parts {
        let end = start
            + findings[start..]
                .iter()
                .take_while(|f| f.project == *project)
                .count();
        if end > start {
            if !first {
                body.push(b',');
            }
            first = false;
            let mut chunk = Vec::new();
            write_issues(&mut chunk, &findings[start..end], name);
            body.extend_from_slice(&chunk[1..chunk.len() - 1]);
        }
        start = end;
    }
    body.push(b']');
    let pagination = json!({ "page": page, "page_size": size, "total": total });
    body.extend_from_slice(b",\"pagination\":");
    let _ = serde_json::to_writer(&mut body, &pagination);
    body.push(b'}');
    json_bytes(StatusCode::OK, body)
}

#[derive(Serialize)]
struct Location<'a> {
    file_path: &'a str,
    start_line: u32,
    end_line: u32,
}

#[derive(Serialize)]
struct IssueState<'a> {
    weakness_id: &'a str,
    severity: &'a str,
    status: &'a str,
    location: Location<'a>,
}

#[derive(Serialize)]
struct Title<'a> {
    en: &'a str,
}

#[derive(Serialize)]
struct KbFields<'a> {
    title: Title<'a>,
    cwe: &'a str,
    owasp2021: &'a str,
}

#[derive(Serialize)]
struct Issue<'a> {
    _id: &'a str,
    project_name: &'a str,
    issue_state: IssueState<'a>,
    vulnerability_trace: [Location<'a>; 1],
    kb_fields: KbFields<'a>,
    created_at: String,
    updated_at: String,
}

/// Writes a JSON array of issues into one buffer.
fn write_issues(buf: &mut Vec<u8>, findings: &[SimFinding], project_name: &str) {
    buf.push(b'[');
    for (i, f) in findings.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        let location = || Location {
            file_path: &f.file_path,
            start_line: f.start_line,
            end_line: f.end_line,
        };
        let issue = Issue {
            _id: &f.id,
            project_name,
            issue_state: IssueState {
                weakness_id: f.weakness.weakness_id,
                severity: f.severity.codethreat(),
                status: f.status.codethreat(),
                location: location(),
            },
            vulnerability_trace: [location()],
            kb_fields: KbFields {
                title: Title {
                    en: f.weakness.title,
                },
                cwe: f.weakness.cwe,
                owasp2021: f.weakness.owasp2021,
            },
            created_at: f.created_at(),
            updated_at: f.updated_at(),
        };
        // Writing into a Vec cannot fail and the struct has no map with non-string keys.
        let _ = serde_json::to_writer(&mut *buf, &issue);
    }
    buf.push(b']');
}

fn multipart_boundary(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|part| {
        let (key, value) = part.trim().split_once('=')?;
        key.eq_ignore_ascii_case("boundary")
            .then(|| value.trim_matches('"').to_string())
    })
}

/// The text fields of a multipart body (file parts are skipped): enough to accept
/// CodeThreat's own CLI uploading a zip, without a multipart crate.
fn multipart_fields(body: &[u8], boundary: &str) -> HashMap<String, String> {
    let delimiter = format!("--{boundary}");
    let mut fields = HashMap::new();
    for part in split_bytes(body, delimiter.as_bytes()).into_iter().skip(1) {
        let Some(split) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..split]);
        if head.to_ascii_lowercase().contains("filename=") {
            continue;
        }
        let Some(name) = head.split(';').find_map(|p| {
            let p = p.trim();
            p.strip_prefix("name=")
                .map(|n| n.trim_matches('"').to_string())
        }) else {
            continue;
        };
        let value = &part[split + 4..];
        let value = value.strip_suffix(b"\r\n").unwrap_or(value);
        fields.insert(name, String::from_utf8_lossy(value).into_owned());
    }
    fields
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn split_bytes<'a>(mut body: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some(i) = find(body, delimiter) {
        parts.push(&body[..i]);
        body = &body[i + delimiter.len()..];
    }
    parts.push(body);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_text_fields_are_read_and_files_skipped() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"project\"\r\n\r\nproject-2\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"upfile\"; filename=\"src.zip\"\r\nContent-Type: application/zip\r\n\r\nPK\x03\x04binary\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"branch\"\r\n\r\nmain\r\n--XyZ--\r\n";
        let boundary = multipart_boundary("multipart/form-data; boundary=XyZ").unwrap();
        let fields = multipart_fields(body, &boundary);
        assert_eq!(fields.get("project").map(String::as_str), Some("project-2"));
        assert_eq!(fields.get("branch").map(String::as_str), Some("main"));
        assert!(!fields.contains_key("upfile"));
    }

    #[test]
    fn pager_id_round_trips() {
        assert_eq!(
            parse_pager_id(&pager_id(3, 7, 500, false)),
            Some((3, 7, 500, false))
        );
        assert_eq!(
            parse_pager_id(&pager_id(3, 7, 500, true)),
            Some((3, 7, 500, true))
        );
        assert_eq!(parse_pager_id("pg-1-2"), None);
        assert_eq!(parse_pager_id("other"), None);
    }
}
