//! The Salt Security contract (`docs/vendors/saltsecurity.md`) under `/salt`.
//!
//! Salt is passive: there is no scan. Its data is at one generation for every asset, moved
//! forward by `Simulator::advance` or `POST /__sim/advance`. Assets are hostnames
//! `project-1` … `project-N`.

use super::data::{self, SimFinding, ENDPOINTS};
use super::faults::FaultKind;
use super::{json_bytes, json_error, Deception, Shared};
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

const MAX_LIMIT: u64 = 1000;
const DEFAULT_LIMIT: u64 = 100;
/// Attack-derived vulnerabilities per asset: a small fixed set, unlike the posture gaps.
const VULNERABILITIES_PER_ASSET: u64 = 3;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/apigovern/posture/gaps", get(posture_gaps))
        .route("/v1/vulnerabilities", get(vulnerabilities))
        .route("/v1/inventory/endpoints", get(endpoints))
        .route("/v1/cloud-connect/cloud-assets", get(cloud_assets))
        .route("/v1/cloud-assets", get(cloud_assets))
        .route("/v1/inventory/oas-swagger", get(oas))
        .route("/v1/unified-inventory/oas-swagger", get(oas))
}

/// 401 without a bearer token, 403 with a wrong one (a token lacking read permission).
pub(crate) async fn authorize(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    match s.bearer_valid(req.headers()) {
        Some(true) => next.run(req).await,
        None => json_error(
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer <access token> (create one under Settings → API Access)",
        ),
        Some(false) => json_error(
            StatusCode::FORBIDDEN,
            "access token rejected or lacking read permission for API findings",
        ),
    }
}

type Params = Query<HashMap<String, String>>;

struct Window {
    offset: u64,
    limit: u64,
    hostname: Option<String>,
}

#[allow(clippy::result_large_err)]
fn window(q: &HashMap<String, String>) -> Result<Window, Response> {
    let number = |key: &str, default: u64| -> Result<u64, Response> {
        match q.get(key) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().map_err(|_| {
                json_error(
                    StatusCode::BAD_REQUEST,
                    &format!("{key} must be a whole number, not \"{v}\""),
                )
            }),
        }
    };
    Ok(Window {
        offset: number("offset", 0)?,
        limit: number("limit", DEFAULT_LIMIT)?.clamp(1, MAX_LIMIT),
        hostname: q.get("hostname").cloned(),
    })
}

/// The asset numbers a request covers: the named host, or every asset.
fn assets(s: &Shared, hostname: Option<&str>) -> Vec<u32> {
    match hostname {
        None => (1..=s.opts.projects).collect(),
        Some(host) => data::project_number(host)
            .filter(|n| *n <= s.opts.projects)
            .into_iter()
            .collect(),
    }
}

/// `{"response": [...], "endOffset": offset + count}`; an empty `response` ends the listing.
fn envelope(items_json: &[u8], offset: u64, count: usize) -> Response {
    envelope_ending_at(items_json, offset + count as u64)
}

/// The envelope with an explicit `endOffset` (what the deceptive faults bend).
fn envelope_ending_at(items_json: &[u8], end_offset: u64) -> Response {
    let mut body = Vec::with_capacity(items_json.len() + 40);
    body.extend_from_slice(b"{\"response\":");
    body.extend_from_slice(items_json);
    body.extend_from_slice(format!(",\"endOffset\":{end_offset}}}").as_bytes());
    json_bytes(StatusCode::OK, body)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GapJson<'a> {
    id: String,
    name: &'a str,
    severity: &'a str,
    status: &'a str,
    category: &'a str,
    hostname: &'a str,
    method: &'a str,
    path: &'a str,
    description: &'a str,
    remediation: &'a str,
    first_seen: String,
    last_seen: String,
}

fn write_gaps(findings: &[SimFinding]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(findings.len() * 550 + 2);
    buf.push(b'[');
    for (i, f) in findings.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        let gap = GapJson {
            id: f.salt_id(),
            name: f.gap.name,
            severity: f.severity.salt(),
            status: f.status.salt(),
            category: f.gap.category,
            hostname: &f.hostname,
            method: f.method,
            path: f.api_path,
            description: f.gap.description,
            remediation: f.gap.remediation,
            first_seen: f.created_at(),
            last_seen: f.updated_at(),
        };
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut buf, &gap);
    }
    buf.push(b']');
    buf
}

/// The gaps of the current generation, `limit` from `offset`.
///
/// Deceptive faults act here: `empty_page` answers `[]` (ending the listing early),
/// `repeat_page` serves the items at `offset − limit` again while `endOffset` moves on,
/// `stuck_offset` answers `endOffset = offset`, `endless_pager` moves `endOffset` by `limit`
/// every time and serves offsets past the data from the beginning again.
async fn posture_gaps(
    State(s): State<Arc<Shared>>,
    Extension(Deception(deception)): Extension<Deception>,
    Query(q): Params,
) -> Response {
    let w = match window(&q) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let generation = s.salt_generation.load(Ordering::SeqCst);
    let parts: Vec<(u32, u64)> = assets(&s, w.hostname.as_deref())
        .into_iter()
        .map(|a| (a, generation))
        .collect();
    let read = |offset: u64| s.page(&parts, offset, w.limit as u32);
    match deception {
        Some(FaultKind::EmptyPage) => envelope_ending_at(b"[]", w.offset),
        Some(FaultKind::RepeatPage) => {
            let (findings, _) = read(w.offset.saturating_sub(w.limit));
            envelope(&write_gaps(&findings), w.offset, findings.len())
        }
        Some(FaultKind::StuckOffset) => {
            let (findings, _) = read(w.offset);
            envelope_ending_at(&write_gaps(&findings), w.offset)
        }
        Some(FaultKind::EndlessPager) => {
            let total: u64 = parts
                .iter()
                .map(|&(asset, g)| s.index(asset, g).total as u64)
                .sum();
            // The data rounded up to whole pages: offsets past it start over.
            let span = total.div_ceil(w.limit) * w.limit;
            let served = if span == 0 { 0 } else { w.offset % span };
            let (findings, _) = read(served);
            envelope_ending_at(&write_gaps(&findings), w.offset + w.limit)
        }
        _ => {
            let (findings, _) = read(w.offset);
            envelope(&write_gaps(&findings), w.offset, findings.len())
        }
    }
}

/// Serves `total` generated items from `offset`, as the inventory listings do.
fn listing(w: &Window, total: u64, item: impl Fn(u64) -> serde_json::Value) -> Response {
    let end = w.offset.saturating_add(w.limit).min(total);
    let items: Vec<_> = (w.offset.min(end)..end).map(item).collect();
    let bytes = serde_json::to_vec(&items).unwrap_or_else(|_| b"[]".to_vec());
    envelope(&bytes, w.offset, items.len())
}

async fn vulnerabilities(State(s): State<Arc<Shared>>, Query(q): Params) -> Response {
    let w = match window(&q) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let hosts = assets(&s, w.hostname.as_deref());
    let seed = s.opts.seed;
    listing(&w, hosts.len() as u64 * VULNERABILITIES_PER_ASSET, |i| {
        let host = hosts[(i / VULNERABILITIES_PER_ASSET) as usize];
        let k = i % VULNERABILITIES_PER_ASSET;
        let h = data::hash(&[0x7A1, seed, host as u64, k]);
        let (method, path) = ENDPOINTS[(h % ENDPOINTS.len() as u64) as usize];
        let name = [
            "Attacker enumerated object identifiers",
            "Credential stuffing attempt",
            "Injection attempt blocked",
        ][k as usize];
        let severity = ["High", "Medium", "Critical"][k as usize];
        json!({
            "id": format!("vuln-{:016x}", h),
            "name": name,
            "severity": severity,
            "status": "Open",
            "category": "Attack",
            "hostname": data::project_name(host),
            "method": method,
            "path": path,
            "firstSeen": "2026-01-01T02:00:00.000Z",
            "lastSeen": "2026-01-01T03:00:00.000Z",
        })
    })
}

async fn endpoints(State(s): State<Arc<Shared>>, Query(q): Params) -> Response {
    let w = match window(&q) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let hosts = assets(&s, w.hostname.as_deref());
    let per = ENDPOINTS.len() as u64;
    listing(&w, hosts.len() as u64 * per, |i| {
        let host = hosts[(i / per) as usize];
        let (method, path) = ENDPOINTS[(i % per) as usize];
        json!({
            "id": format!("ep-{host}-{}", i % per),
            "hostname": data::project_name(host),
            "apiName": data::project_name(host),
            "method": method,
            "path": path,
            "authenticated": !path.starts_with("/v1/login"),
            "sensitiveData": path.contains("accounts") || path.contains("payments"),
        })
    })
}

async fn cloud_assets(State(s): State<Arc<Shared>>, Query(q): Params) -> Response {
    let w = match window(&q) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let hosts = assets(&s, w.hostname.as_deref());
    listing(&w, hosts.len() as u64, |i| {
        let host = hosts[i as usize];
        json!({
            "id": format!("asset-{host}"),
            "name": data::project_name(host),
            "hostname": data::project_name(host),
            "provider": "aws",
            "type": "api-gateway",
            "region": "us-east-1",
        })
    })
}

async fn oas(State(s): State<Arc<Shared>>, Query(q): Params) -> Response {
    let Some(host) = q.get("hostname") else {
        return json_error(StatusCode::BAD_REQUEST, "missing query parameter: hostname");
    };
    if assets(&s, Some(host)).is_empty() {
        return json_error(
            StatusCode::NOT_FOUND,
            &format!("no API learned for hostname \"{host}\""),
        );
    }
    let mut paths = serde_json::Map::new();
    for (method, path) in ENDPOINTS {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method.to_ascii_lowercase()] = json!({
            "summary": format!("{method} {path}"),
            "responses": { "200": { "description": "OK" } },
        });
    }
    Json(json!({
        "openapi": "3.0.3",
        "info": { "title": host, "version": "1.0.0", "description": "Learned by Salt Security (simulated)" },
        "servers": [{ "url": format!("https://{host}") }],
        "paths": paths,
    }))
    .into_response()
}
