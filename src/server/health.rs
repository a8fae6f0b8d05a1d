//! `GET /healthz`, `GET /readyz` and `GET /metrics`: what a supervisor, a load balancer and
//! Prometheus ask.

use super::{verify, ServerState};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// How long `/readyz` waits for the store before calling it not ready: a page transaction of
/// a run holds it for milliseconds; seconds means something is wrong.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The process is up and serving. Nothing else is checked: a restart would not fix a busy
/// vendor or a locked store.
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when the store took its heartbeat write lately and answers a read, and the
/// scheduler runs; 503 otherwise (also while the store is still being opened). The body says which part is not ready, and how long ago
/// each configured scan last synced successfully.
/// With `metrics_token_file` set, a caller without the token learns only whether the daemon
/// is ready (the status code and `ready`): the scan names, their ages and the store's error
/// text are for the same callers as `/metrics`.
pub(super) async fn readyz(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    let detailed = match &state.metrics_token {
        Some(token) => verify::bearer(
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
            token.expose(),
        ),
        None => true,
    };
    let Some(backend) = state.backend() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "ready": false,
                "store": "not open yet",
                "scheduler": "not running",
                "scans": {},
            })),
        )
            .into_response();
    };
    let (config, ctx) = backend.current();
    let scheduler = backend.scheduler_running();
    let ttl = crate::store::lease_ttl();
    let writable = writable(&ctx);
    let check = tokio::time::timeout(
        STORE_CHECK_TIMEOUT,
        ctx.reader.read(|s| s.last_successful_syncs()),
    )
    .await;
    let (store, last) = match check {
        Ok(Ok(_)) if !writable => (
            format!(
                "not writable: the heartbeat has not been written for {}s",
                ttl.as_secs()
            ),
            None,
        ),
        Ok(Ok(last)) => ("writable".to_string(), Some(last)),
        Ok(Err(e)) => {
            tracing::warn!("readyz: the store cannot be read: {e}");
            (format!("not readable: {e}"), None)
        }
        Err(_) => (
            format!(
                "no answer within {}s (locked by another process?)",
                STORE_CHECK_TIMEOUT.as_secs()
            ),
            None,
        ),
    };
    let now = Utc::now();
    let mut scans = Map::new();
    for scan in config.scans.iter().filter(|s| s.enabled) {
        let age = last
            .as_ref()
            .and_then(|l| l.get(&scan.name))
            .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
            .map(|at| (now - at.with_timezone(&Utc)).num_seconds().max(0));
        scans.insert(
            scan.name.clone(),
            json!({ "last_success_age_seconds": age }),
        );
    }
    let ready = last.is_some() && scheduler;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = if detailed {
        json!({
            "ready": ready,
            "node": crate::config::node(),
            "store": store,
            "scheduler": if scheduler { "running" } else { "not running" },
            "scans": Value::Object(scans),
        })
    } else {
        json!({
            "ready": ready,
            "detail": "send the metrics token (Authorization: Bearer) for the store, the scheduler and each scan",
        })
    };
    (status, Json(body)).into_response()
}

/// Whether the heartbeat (a write every few seconds) went through lately: the store's reads
/// alone cannot show one that takes no writes (disk full, a lock held by another process).
/// Asked rather than tried, so neither /readyz nor /metrics writes, or waits behind a run's
/// page commit.
fn writable(ctx: &crate::sync::SyncContext) -> bool {
    ctx.store_beat.fresh(crate::store::lease_ttl())
}

/// The Prometheus text exposition; with `metrics_token_file` set, only for
/// `Authorization: Bearer <token>`.
pub(super) async fn metrics(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !verify::bearer(given, token.expose()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"scansync metrics\"",
                )],
                "a bearer token is required (metrics_token_file)\n",
            )
                .into_response();
        }
    }
    let Some(backend) = state.backend() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is not open yet\n",
        )
            .into_response();
    };
    let (config, ctx) = backend.current();
    let schedule = state.schedule_metrics.get(&config);
    // /readyz's verdict, for an alert that cannot probe it: rendering reads the store (or
    // fails the scrape), so what is left is the heartbeat and the scheduler.
    let ready = writable(&ctx) && backend.scheduler_running();
    let rendered = state
        .metrics_cache
        .render(&ctx.reader, |store| {
            schedule.render(&store.scan_created) + &crate::metrics::render_ready(ready)
        })
        .await;
    match rendered {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::warn!("metrics: rendering failed: {e:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("metrics failed: {e}\n"),
            )
                .into_response()
        }
    }
}
