//! `POST /hooks/<scan>`: a push on GitHub, GitLab or Bitbucket starts the scan bound to it.
//!
//! Order matters: find the scan (404) → read the body within its cap and time (413/408) →
//! verify the signature on the raw bytes (401) → only then look at the event (200, nothing
//! started, for anything but a push) and parse the body (400) → match the branch (200,
//! nothing started, when no pattern matches) → remember the push by the digest of its signed
//! body, whatever its delivery header says (200 `duplicate`
//! for a repeat) → start or queue the run (202 with its id). Every answer is logged with the
//! scan and the reason, and counted in the `webhook_trigger` metric; the secret never is.

use super::platform::{self, Change, Event};
use super::{
    glob, verify, Backend, Pushed, ServerState, TriggerError, Triggered, BODY_READ_TIMEOUT,
};
use crate::config::{Platform, ScanConfig, ScanHookConfig};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The largest body accepted (GitHub push payloads are far below this for normal pushes).
pub const MAX_BODY: usize = 1024 * 1024;
/// A body a little over the cap is read to its end and dropped before answering 413, so the
/// sender (which may still be writing) reads the answer instead of a reset connection. Past
/// this the connection is simply closed.
const DRAIN_LIMIT: usize = 8 * MAX_BODY;
/// Refusals share one rate limit: a flood of bad requests from strangers costs a log line
/// every few seconds, with the count of the lines held back.
static REFUSALS: std::sync::Mutex<crate::logging::RateLimited> =
    std::sync::Mutex::new(crate::logging::RateLimited::new(Duration::from_secs(10)));

/// Whether a refusal's log line may be written now: `Some(tail)` to append (the count of
/// lines held back), `None` to stay quiet.
fn refusal_line() -> Option<String> {
    REFUSALS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .hit()
        .map(crate::logging::held_back)
}

/// One answer: its status, its metric word, its body, and the reason for the log.
struct Answer {
    status: StatusCode,
    result: &'static str,
    body: serde_json::Value,
}

impl Answer {
    fn error(status: StatusCode, result: &'static str, message: &str) -> Answer {
        Answer {
            status,
            result,
            body: json!({ "error": message }),
        }
    }
}

pub(super) async fn hook(
    State(state): State<Arc<ServerState>>,
    Path(scan): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (label, answer) = handle(&state, &scan, &headers, body).await;
    crate::metrics::global().webhook_trigger(&label, answer.result);
    let mut response = (answer.status, Json(answer.body)).into_response();
    if answer.status == StatusCode::PAYLOAD_TOO_LARGE {
        // Whatever of the body is still unread is not worth keeping the connection for.
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}

/// The answer, and the scan label to count it under: the scan's name when it is configured,
/// empty otherwise (names in URLs are the sender's choice and must not grow the metrics).
async fn handle(
    state: &ServerState,
    scan_name: &str,
    headers: &HeaderMap,
    body: Body,
) -> (String, Answer) {
    let Some(backend) = state.backend() else {
        if let Some(tail) = refusal_line() {
            warn!(scan = ?scan_name, "webhook refused (503): scansync is starting, the store is not open yet{tail}");
        }
        return (
            String::new(),
            Answer::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "scansync is starting; try again shortly",
            ),
        );
    };
    let (config, _) = backend.current();
    let Some(scan) = config.scans.iter().find(|s| s.name == scan_name) else {
        if let Some(tail) = refusal_line() {
            warn!(scan = ?scan_name, "webhook refused (404): no scan of that name{tail}");
        }
        return (String::new(), not_found());
    };
    let label = scan.name.clone();
    let Some(webhook) = &scan.webhook else {
        if let Some(tail) = refusal_line() {
            warn!(scan = %scan.name, "webhook refused (404): the scan has no webhook = {{ ... }}{tail}");
        }
        return (label, not_found());
    };
    if !scan.enabled {
        if let Some(tail) = refusal_line() {
            warn!(scan = %scan.name, "webhook refused (404): the scan is disabled{tail}");
        }
        return (label, not_found());
    }
    let answer = match accept(&*backend, scan, webhook, headers, body).await {
        Ok(a) | Err(a) => a,
    };
    (label, answer)
}

fn not_found() -> Answer {
    // The same answer for "no such scan" and "no webhook": a sender learns nothing of the
    // config. The log tells the operator which.
    Answer::error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no webhook for this scan",
    )
}

/// From the body on; `Err` is an answer that ends the request early (already logged).
async fn accept(
    backend: &dyn Backend,
    scan: &ScanConfig,
    webhook: &ScanHookConfig,
    headers: &HeaderMap,
    body: Body,
) -> Result<Answer, Answer> {
    let refuse = |status: StatusCode, result: &'static str, reason: &str| {
        if let Some(tail) = refusal_line() {
            warn!(scan = %scan.name, platform = %webhook.platform, "webhook refused ({}): {reason}{tail}", status.as_u16());
        }
        Answer::error(status, result, reason)
    };
    let body = read_body(headers, body).await.map_err(|e| match e {
        BodyError::TooLarge => refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bad_request",
            &format!("the body is larger than {} bytes", MAX_BODY),
        ),
        BodyError::Timeout => refuse(
            StatusCode::REQUEST_TIMEOUT,
            "bad_request",
            &format!(
                "the body did not arrive within {}s",
                BODY_READ_TIMEOUT.as_secs()
            ),
        ),
        BodyError::Broken(e) => refuse(StatusCode::BAD_REQUEST, "bad_request", &e),
    })?;
    let secret = webhook.secret.as_ref().ok_or_else(|| {
        refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "no secret is configured",
        )
    })?;
    let now = chrono::Utc::now().timestamp();
    verify_signature(webhook.platform, headers, secret.expose(), &body, now)
        .map_err(|reason| refuse(StatusCode::UNAUTHORIZED, "unauthorized", &reason))?;

    match platform::event(webhook.platform, headers)
        .map_err(|reason| refuse(StatusCode::BAD_REQUEST, "bad_request", &reason))?
    {
        Event::Push => {}
        Event::Other(event) => {
            info!(scan = %scan.name, event = %event, "webhook event is not a push; nothing started");
            return Ok(ignored(&format!(
                "event \"{event}\" starts nothing; only pushes do"
            )));
        }
    }
    let changes = platform::changes(webhook.platform, &body)
        .map_err(|reason| refuse(StatusCode::BAD_REQUEST, "bad_request", &reason))?;
    let mut branches: Vec<String> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for change in changes {
        match change {
            Change::Branch(b) if glob::matches_any(&webhook.branches, &b) => {
                if !branches.contains(&b) {
                    branches.push(b);
                }
            }
            Change::Branch(b) => skipped.push(format!("branch \"{b}\" is not in branches")),
            Change::Deleted(b) => skipped.push(format!("branch \"{b}\" was deleted")),
            Change::NotABranch(r) => skipped.push(format!("\"{r}\" is not a branch")),
        }
    }
    if branches.is_empty() {
        let reason = if skipped.is_empty() {
            "the push changed no ref".to_string()
        } else {
            skipped.join("; ")
        };
        info!(scan = %scan.name, "webhook push starts nothing: {reason}");
        return Ok(ignored(&reason));
    }

    let delivery = platform::delivery_id(webhook.platform, headers);
    if delivery.is_none() && webhook.platform == Platform::Github {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "X-GitHub-Delivery is missing; GitHub sends it with every delivery",
        ));
    }
    // The replay guard is keyed on what the push means (repository, refs and the commits
    // they point to, all covered by the signature), not on the unsigned delivery header nor
    // the body's bytes: a captured push sent again under a new or no delivery id, or
    // re-serialised, is still the same push. How long it is remembered is
    // `[store] retention.webhook_deliveries`; the newest push of each scan is remembered
    // for good (see `Store::claim_delivery`).
    let key = replay_key(webhook.platform, &body);
    let shown = delivery.clone().unwrap_or_else(|| key.clone());
    let (config, ctx) = backend.current();
    let keep = config.store.retention.webhook_deliveries;
    // The delivery and its runs are recorded together (`Store::claim_push`): a node that
    // dies after this leaves runs another node takes over, one that dies before leaves
    // nothing, so the sender's retry, wherever it lands, is either a duplicate of a push
    // that runs or a new push.
    let outcomes = match backend.trigger_push(scan, &branches, &key, keep).await {
        Ok(Pushed::Runs(outcomes)) => outcomes,
        Ok(Pushed::Duplicate {
            run_id,
            received_at,
        }) => {
            info!(scan = %scan.name, delivery = %shown, "webhook push already received at {received_at}; nothing started");
            return Ok(Answer {
                status: StatusCode::OK,
                result: "duplicate",
                body: json!({ "result": "duplicate", "delivery": shown, "run_id": run_id }),
            });
        }
        Err(e) => {
            let reason = e.to_string();
            return Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                &reason,
            ));
        }
    };

    let mut runs = Vec::new();
    let mut failure = None;
    for (branch, outcome) in outcomes {
        match outcome {
            Ok(Triggered { run_id, queued }) => {
                let result = if queued { "queued" } else { "started" };
                info!(
                    scan = %scan.name,
                    branch = %branch,
                    run_id,
                    delivery = %shown,
                    "webhook push: run {result}"
                );
                runs.push(json!({ "branch": branch, "run_id": run_id, "result": result }));
            }
            Err(e) => failure = Some(e),
        }
    }
    let first = runs.first().cloned();
    if let Some(first) = &first {
        if let Some(run) = first["run_id"].as_i64() {
            let (name, id) = (scan.name.clone(), key.clone());
            if let Err(e) = ctx
                .with_store(move |s| s.set_delivery_run(&name, &id, run))
                .await
            {
                warn!(scan = %scan.name, "cannot note the delivery's run: {e}");
            }
        }
    }
    match (first, failure) {
        (Some(first), failure) => {
            if let Some(e) = failure {
                warn!(scan = %scan.name, "webhook push: another branch's run did not start: {e}");
            }
            let result = if first["result"] == "queued" {
                "queued"
            } else {
                "started"
            };
            Ok(Answer {
                status: StatusCode::ACCEPTED,
                result,
                body: json!({
                    "result": result,
                    "scan": scan.name,
                    "branch": first["branch"],
                    "run_id": first["run_id"],
                    "runs": runs,
                }),
            })
        }
        (None, failure) => {
            // Nothing started: forget the delivery, so the sender's retry is not a "replay".
            {
                let (name, key) = (scan.name.clone(), key.clone());
                let _ = ctx
                    .with_store(move |s| s.release_delivery(&name, &key))
                    .await;
            }
            let reason =
                failure.map_or_else(|| TriggerError::Stopping.to_string(), |e| e.to_string());
            Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                &reason,
            ))
        }
    }
}

/// What the replay guard remembers of a push: the digest of what it means
/// ([`platform::identity`]), or of its body when the body does not say.
fn replay_key(platform: Platform, body: &[u8]) -> String {
    use sha2::Digest;
    let digest = match platform::identity(platform, body) {
        Some(identity) => sha2::Sha256::digest(identity.as_bytes()),
        None => sha2::Sha256::digest(body),
    };
    format!("sha256:{}", hex::encode(digest))
}

fn ignored(reason: &str) -> Answer {
    Answer {
        status: StatusCode::OK,
        result: "ignored",
        body: json!({ "result": "ignored", "reason": reason }),
    }
}

/// The platform's signature check over the raw body; `now` is Unix seconds. Public for the
/// fuzz targets (`fuzz/`).
pub fn verify_signature(
    platform: Platform,
    headers: &HeaderMap,
    secret: &str,
    body: &[u8],
    now: i64,
) -> Result<(), String> {
    let h = |name| platform::header(headers, name);
    match platform {
        Platform::Github => verify::hex_hmac(
            "X-Hub-Signature-256",
            h("X-Hub-Signature-256"),
            secret.as_bytes(),
            body,
        ),
        Platform::Bitbucket => verify::hex_hmac(
            "X-Hub-Signature",
            h("X-Hub-Signature"),
            secret.as_bytes(),
            body,
        ),
        Platform::Gitlab => match h("webhook-signature") {
            Some(signature) => verify::standard_webhooks(
                verify::StandardSignature {
                    id: h("webhook-id"),
                    timestamp: h("webhook-timestamp"),
                    signature,
                },
                secret,
                body,
                now,
            ),
            None => verify::gitlab_token(h("X-Gitlab-Token"), secret),
        },
    }
}

enum BodyError {
    TooLarge,
    Timeout,
    Broken(String),
}

/// The body, at most [`MAX_BODY`] bytes, within [`BODY_READ_TIMEOUT`].
async fn read_body(headers: &HeaderMap, mut body: Body) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return Err(BodyError::TooLarge);
    }
    let read = async {
        let mut kept: Vec<u8> = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| BodyError::Broken(format!("reading the body failed: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            total += data.len();
            if total <= MAX_BODY {
                kept.extend_from_slice(&data);
            } else if total > DRAIN_LIMIT {
                return Err(BodyError::TooLarge);
            }
        }
        if total > MAX_BODY {
            Err(BodyError::TooLarge)
        } else {
            Ok(Bytes::from(kept))
        }
    };
    tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .unwrap_or(Err(BodyError::Timeout))
}
