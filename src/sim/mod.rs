//! The vendor simulator: serves the CodeThreat and Salt Security contracts
//! (`docs/vendors/*.md`) from one loopback server, with deterministic data and injectable
//! faults, so the connectors, the daemon, the demo and the tests have a vendor to talk to.
//!
//! Faults ([`faults`], `--fault KIND[:RATE]`): transport failures (`429`, `500`, `timeout`,
//! `truncated`, `html`) and deceptive pagers that answer 200 with valid JSON but lie about the
//! listing (`empty_page`, `short_page`, `repeat_page`, `no_pager`, `endless_pager`,
//! `stuck_offset`). Status words ([`SimOptions::status_churn`]): with a status churn above 0,
//! findings also change their vendor status word between generations (CodeThreat `Fixed`,
//! `False Positive`, `Accepted`, `ReCheck`, `Open`; Salt `Resolved`, `False Positive`,
//! `Ignored`, `Open`), so a store's reading of them can be tested end to end.
//!
//! It never imports the connectors (`crate::vendors`): it is written from the contract, so a
//! connector test against it checks the connector against the contract, not against itself.
//!
//! Layout: CodeThreat under `/codethreat`, Salt Security under `/salt`, the test controls under
//! `/__sim` (never faulted, never delayed): `POST /__sim/advance` (Salt's next generation),
//! `POST /__sim/faults` (replace the faults in force), `GET /__sim/requests`, `GET /__sim/health`. Anything else is a plain-text 404, which is what a
//! connector pointed at a wrong URL should see.

pub mod codethreat;
pub mod data;
pub mod faults;
pub mod salt;

pub use faults::{Fault, FaultKind, FaultParseError, RequestKind};

use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use data::{GenerationIndex, SimFinding};
use faults::FaultPlan;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a `timeout` fault holds a request: longer than any sane client timeout.
const HOLD_FOR_TIMEOUT: Duration = Duration::from_secs(120);
/// Recorded requests kept for [`Simulator::requests`]; older ones are dropped so a
/// million-finding benchmark does not grow the log without bound.
const MAX_RECORDED: usize = 10_000;

/// What the simulator serves and accepts.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Must be a loopback address: the simulator serves fake data behind a well-known token.
    pub listen: SocketAddr,
    pub token: String,
    pub organization: String,
    /// Projects (CodeThreat) and assets (Salt Security) `project-1` … `project-N`.
    pub projects: u32,
    pub findings_per_project: u32,
    pub seed: u64,
    /// How long a CodeThreat scan takes from `queued` to `end`.
    pub scan_seconds: f64,
    /// Percent of a project's findings that change between consecutive generations.
    pub churn: f64,
    /// Percent of a project's findings whose vendor status word changes between consecutive
    /// generations (see [`data::SimStatus`]). 0, the default, keeps every finding `Open`, so
    /// the churn counts stay those of `churn` alone.
    pub status_churn: f64,
    /// Added before every vendor response.
    pub latency_ms: u64,
    pub faults: Vec<Fault>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            token: "sim-token".to_string(),
            organization: "sim-org".to_string(),
            projects: 3,
            findings_per_project: 100,
            seed: 1,
            scan_seconds: 2.0,
            churn: 0.0,
            status_churn: 0.0,
            latency_ms: 0,
            faults: Vec::new(),
        }
    }
}

/// Which contract a request was addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SimVendor {
    CodeThreat,
    Salt,
}

/// One request as the simulator saw it: enough for tests to pin a connector's request shape
/// without the simulator keeping any secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedRequest {
    pub vendor: SimVendor,
    pub method: String,
    /// The full path, prefix included (`/codethreat/api/...`).
    pub path: String,
    pub query: Option<String>,
    /// `Authorization: Bearer <the accepted token>` was present.
    pub auth_valid: bool,
    /// CodeThreat only: `x-ct-organization` named the accepted organization.
    pub organization_valid: Option<bool>,
    pub content_type: Option<String>,
}

/// State every handler shares.
pub(crate) struct Shared {
    pub(crate) opts: SimOptions,
    faults: Mutex<FaultPlan>,
    requests: Mutex<VecDeque<RecordedRequest>>,
    pub(crate) salt_generation: AtomicU64,
    pub(crate) codethreat: Mutex<codethreat::CtState>,
    indexes: Mutex<HashMap<(u32, u64), Arc<GenerationIndex>>>,
    shutdown: watch::Receiver<bool>,
}

/// Locks a mutex, ignoring poisoning: the simulator's state stays usable after a handler
/// panic, which matters more for a test fixture than strict consistency.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The paging index of one project at one generation, computed once.
    pub(crate) fn index(&self, project: u32, generation: u64) -> Arc<GenerationIndex> {
        // With no churn every generation is the same set: share one index.
        let generation = if self.opts.churn <= 0.0 && self.opts.status_churn <= 0.0 {
            0
        } else {
            generation
        };
        if let Some(index) = lock(&self.indexes).get(&(project, generation)) {
            return index.clone();
        }
        let o = &self.opts;
        let index = Arc::new(GenerationIndex::build(
            o.seed,
            project,
            o.findings_per_project,
            o.churn,
            o.status_churn,
            generation,
        ));
        let mut cache = lock(&self.indexes);
        if cache.len() >= 512 {
            cache.clear();
        }
        cache.insert((project, generation), index.clone());
        index
    }

    /// Up to `limit` findings from `offset` in the concatenation of `(project, generation)`
    /// listings, and the concatenation's total.
    pub(crate) fn page(
        &self,
        parts: &[(u32, u64)],
        offset: u64,
        limit: u32,
    ) -> (Vec<SimFinding>, u64) {
        let mut out = Vec::new();
        let mut skip = offset;
        let mut total = 0u64;
        for &(project, generation) in parts {
            let index = self.index(project, generation);
            total += index.total as u64;
            if skip >= index.total as u64 {
                skip -= index.total as u64;
                continue;
            }
            let want = limit - out.len() as u32;
            if want > 0 {
                out.extend(index.page(skip as u32, want));
            }
            skip = 0;
        }
        (out, total)
    }

    fn record(&self, request: RecordedRequest) {
        let mut log = lock(&self.requests);
        if log.len() >= MAX_RECORDED {
            log.pop_front();
        }
        log.push_back(request);
    }

    pub(crate) fn bearer_valid(&self, headers: &HeaderMap) -> Option<bool> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let valid = value.split_once(' ').is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && token.trim() == self.opts.token
        });
        Some(valid)
    }
}

/// A running simulator. Dropping it without [`Simulator::shutdown`] leaves the server task
/// running until the runtime ends.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: JoinHandle<io::Result<()>>,
}

impl Simulator {
    /// Binds and starts serving. Refuses any address outside loopback.
    pub async fn start(opts: SimOptions) -> io::Result<Simulator> {
        if !opts.listen.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the simulator listens on loopback only (e.g. 127.0.0.1:0), not {}: it serves \
                     fake findings behind a well-known token",
                    opts.listen
                ),
            ));
        }
        if !(0.0..=100.0).contains(&opts.churn) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("churn is a percent between 0 and 100, not {}", opts.churn),
            ));
        }
        if !(0.0..=100.0).contains(&opts.status_churn) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "status churn is a percent between 0 and 100, not {}",
                    opts.status_churn
                ),
            ));
        }
        if !opts.scan_seconds.is_finite() || opts.scan_seconds < 0.0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "scan seconds must be zero or more, not {}",
                    opts.scan_seconds
                ),
            ));
        }
        let listener = tokio::net::TcpListener::bind(opts.listen).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            faults: Mutex::new(FaultPlan::new(opts.faults.clone())),
            requests: Mutex::new(VecDeque::new()),
            salt_generation: AtomicU64::new(0),
            codethreat: Mutex::new(codethreat::CtState::new(opts.projects)),
            indexes: Mutex::new(HashMap::new()),
            shutdown: stopped.clone(),
            opts,
        });
        let app = router(shared.clone());
        let mut signal = stopped;
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = signal.wait_for(|stop| *stop).await;
                })
                .await
        });
        Ok(Simulator {
            addr,
            shared,
            stop,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL of the CodeThreat contract, e.g. `http://127.0.0.1:PORT/codethreat`.
    pub fn codethreat_url(&self) -> String {
        format!("http://{}/codethreat", self.addr)
    }

    /// Base URL of the Salt Security contract, e.g. `http://127.0.0.1:PORT/salt`.
    pub fn salt_url(&self) -> String {
        format!("http://{}/salt", self.addr)
    }

    /// Moves Salt Security's data to its next generation. Salt is passive (no scan to
    /// start), so tests and the demo call this between syncs to make findings change.
    pub fn advance(&self) {
        self.shared.salt_generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Salt Security's current generation.
    pub fn salt_generation(&self) -> u64 {
        self.shared.salt_generation.load(Ordering::SeqCst)
    }

    /// Replaces the faults in force (and resets their `xN` counters).
    pub fn set_faults(&self, faults: Vec<Fault>) {
        *lock(&self.shared.faults) = FaultPlan::new(faults);
    }

    /// Every CodeThreat scan started so far (project, branch, metadata), oldest first.
    pub fn codethreat_scans(&self) -> Vec<codethreat::StartedScan> {
        lock(&self.shared.codethreat).started_scans()
    }

    /// The most recent vendor requests (up to 10,000), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).iter().cloned().collect()
    }

    /// Writes a scansync config pointing at this simulator: one instance of each vendor, one
    /// scan each, the store at `store_path` (the SQLite file). The token goes to a file
    /// beside it (`<config file name>.token`, mode 0600) that the config names with
    /// `token_file`, so the generated config shows the way operators should keep tokens and
    /// loads without the inline-token warning.
    pub fn write_config(&self, path: &Path, store_path: &Path) -> io::Result<()> {
        let mut token_name = path.file_name().unwrap_or_default().to_os_string();
        token_name.push(".token");
        let token_path = path.with_file_name(&token_name);
        write_private(&token_path, &self.shared.opts.token)?;
        std::fs::write(
            path,
            self.config_toml(store_path, &token_name.to_string_lossy()),
        )
    }

    fn config_toml(&self, store_path: &Path, token_file: &str) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let o = &self.shared.opts;
        format!(
            "# Written by `scansync simulator`: points scansync at the local simulator.\n\
             [store]\n\
             path = {store}\n\
             \n\
             [daemon]\n\
             poll_interval = \"1s\"\n\
             \n\
             [instances.sim-codethreat]\n\
             vendor = \"codethreat\"\n\
             url = {ct}\n\
             organization = {org}\n\
             token_file = {token}\n\
             \n\
             [instances.sim-salt]\n\
             vendor = \"saltsecurity\"\n\
             url = {salt}\n\
             token_file = {token}\n\
             \n\
             [[scans]]\n\
             name = \"codethreat-project-1\"\n\
             instance = \"sim-codethreat\"\n\
             bind_to = \"project-1\"\n\
             branch = \"main\"\n\
             schedule = \"now\"\n\
             \n\
             [[scans]]\n\
             name = \"salt-project-1\"\n\
             instance = \"sim-salt\"\n\
             bind_to = \"project-1\"\n\
             schedule = \"now\"\n",
            store = q(&store_path.to_string_lossy()),
            ct = q(&self.codethreat_url()),
            salt = q(&self.salt_url()),
            org = q(&o.organization),
            token = q(token_file),
        )
    }

    /// Stops accepting, releases requests held by a `timeout` fault, and waits for the
    /// server to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let ct = codethreat::router()
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            codethreat::authorize,
        ))
        .fallback(unknown_vendor_path)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            gate_codethreat,
        ));
    let salt = salt::router()
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            salt::authorize,
        ))
        .fallback(unknown_vendor_path)
        .layer(middleware::from_fn_with_state(shared.clone(), gate_salt));
    Router::new()
        .route("/__sim/advance", post(admin_advance))
        .route("/__sim/faults", post(admin_faults))
        .route("/__sim/requests", get(admin_requests))
        .route("/__sim/health", get(admin_health))
        .nest("/codethreat", ct)
        .nest("/salt", salt)
        .fallback(unknown_path)
        .with_state(shared)
}

async fn admin_advance(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let generation = s.salt_generation.fetch_add(1, Ordering::SeqCst) + 1;
    Json(serde_json::json!({ "generation": generation }))
}

/// `POST /__sim/faults` with `--fault` values, separated by white space or commas (an empty
/// body clears them): replaces the faults in force, as [`Simulator::set_faults`] does, so a
/// test driving the simulator as a child process can make it lie between two syncs.
async fn admin_faults(State(s): State<Arc<Shared>>, body: String) -> Response {
    let parsed: Result<Vec<Fault>, FaultParseError> = body
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::parse)
        .collect();
    match parsed {
        Ok(faults) => {
            let words: Vec<String> = faults.iter().map(Fault::to_string).collect();
            *lock(&s.faults) = FaultPlan::new(faults);
            Json(serde_json::json!({ "faults": words })).into_response()
        }
        Err(e) => json_error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn admin_requests(State(s): State<Arc<Shared>>) -> Json<Vec<RecordedRequest>> {
    Json(lock(&s.requests).iter().cloned().collect())
}

async fn admin_health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn unknown_path(uri: axum::http::Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!(
            "404 not found: {}\nThis is the scansync vendor simulator: CodeThreat lives under \
             /codethreat, Salt Security under /salt.\n",
            uri.path()
        ),
    )
        .into_response()
}

async fn unknown_vendor_path(OriginalUri(uri): OriginalUri) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        &format!("no such endpoint: {}", uri.path()),
    )
}

/// The error body both contracts' clients read: `{"error": true, "message": "…"}`.
pub(crate) fn json_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": true, "message": message })),
    )
        .into_response()
}

/// A response from a body already serialized into one buffer.
pub(crate) fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn gate_codethreat(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    gate(s, SimVendor::CodeThreat, req, next).await
}

async fn gate_salt(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    gate(s, SimVendor::Salt, req, next).await
}

/// A deceptive fault the gate decided on, for the vendor handler to act out (`None`: answer
/// honestly). The gate puts one on every request it lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deception(pub(crate) Option<FaultKind>);

/// What a vendor request is, for deciding which faults may hit it.
fn request_kind(
    vendor: SimVendor,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
) -> RequestKind {
    let path = uri.path();
    let param = |key: &str| {
        uri.query()?
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    };
    let findings_page = match vendor {
        SimVendor::CodeThreat => (method == axum::http::Method::GET
            && path.ends_with("/api/scanlog/issues"))
        .then(|| param("pid").is_some()),
        SimVendor::Salt => path
            .ends_with("/posture/gaps")
            .then(|| param("offset").is_some_and(|o| o.parse::<u64>().is_ok_and(|o| o > 0))),
    };
    match findings_page {
        Some(false) => RequestKind::FirstFindingsPage(vendor),
        Some(true) => RequestKind::FurtherFindingsPage(vendor),
        None if is_listing(path) => RequestKind::Listing,
        None => RequestKind::Other,
    }
}

/// Paths whose responses are findings (or inventory) pages: the only ones truncation hits.
fn is_listing(path: &str) -> bool {
    [
        "/api/scanlog/issues",
        "/posture/gaps",
        "/v1/vulnerabilities",
        "/inventory/endpoints",
        "/cloud-assets",
    ]
    .iter()
    .any(|suffix| path.ends_with(suffix))
}

/// What every vendor request goes through before its handler: recording, latency, faults.
async fn gate(s: Arc<Shared>, vendor: SimVendor, mut req: Request, next: Next) -> Response {
    let original = req
        .extensions()
        .get::<OriginalUri>()
        .map(|u| u.0.clone())
        .unwrap_or_else(|| req.uri().clone());
    let headers = req.headers();
    let organization_valid = (vendor == SimVendor::CodeThreat).then(|| {
        headers
            .get("x-ct-organization")
            .and_then(|v| v.to_str().ok())
            == Some(s.opts.organization.as_str())
    });
    s.record(RecordedRequest {
        vendor,
        method: req.method().to_string(),
        path: original.path().to_string(),
        query: original.query().map(str::to_string),
        auth_valid: s.bearer_valid(headers).unwrap_or(false),
        organization_valid,
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    if s.opts.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(s.opts.latency_ms)).await;
    }
    let kind = request_kind(vendor, req.method(), req.uri());
    let fault = lock(&s.faults).decide(s.opts.seed, kind);
    let deception = fault.map(|(k, _)| k).filter(|k| k.is_deceptive());
    req.extensions_mut().insert(Deception(deception));
    match fault {
        None => next.run(req).await,
        Some((k, _)) if k.is_deceptive() => next.run(req).await,
        Some((FaultKind::Status429, _)) => {
            let mut r = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate limit exceeded (simulated); retry after 1 second",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Some((FaultKind::Status500, _)) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal server error (simulated)",
        ),
        Some((FaultKind::Timeout, _)) => {
            let mut stopped = s.shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(HOLD_FOR_TIMEOUT) => {}
                _ = stopped.wait_for(|stop| *stop) => {}
            }
            (StatusCode::GATEWAY_TIMEOUT, "gateway timeout (simulated)\n").into_response()
        }
        Some((FaultKind::Html, n)) => {
            let status = if n % 2 == 0 {
                StatusCode::OK
            } else {
                StatusCode::BAD_GATEWAY
            };
            let mut r = (
                status,
                "<!DOCTYPE html>\n<html><head><title>Sign in</title></head>\
                 <body><h1>Please sign in</h1><p>This page is served by a proxy in front of \
                 the API (simulated).</p></body></html>\n",
            )
                .into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        Some((FaultKind::Truncated, _)) => {
            let response = next.run(req).await;
            let (mut parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(bytes.slice(..bytes.len() / 2)))
        }
        Some((deceptive, _)) => unreachable!("{deceptive:?} is acted out by the handler"),
    }
}

/// Writes `text` to a new file readable by its owner only (scansync warns about token files
/// that group or others can read).
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}
