//! The connectors against a scripted loopback server that serves the contract's fixtures and
//! records every request, so each test checks both the request shape and the mapping.

mod common;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine as _;
use scansync::config::InstanceConfig;
use scansync::finding::{Location, Severity};
use scansync::http::{HttpClient, RetryPolicy};
use scansync::secret::Secret;
use scansync::vendors::{self, ScanRequest, ScanStatus, Vendor, VendorError};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "tok-7c1e-SECRET-do-not-print";
const ISSUES: &str = include_str!("fixtures/vendors/codethreat_issues.json");
const STATUS_RUNNING: &str = include_str!("fixtures/vendors/codethreat_status_running.json");
const STATUS_END: &str = include_str!("fixtures/vendors/codethreat_status_end.json");
const STATUS_FAILED: &str = include_str!("fixtures/vendors/codethreat_status_failed.json");
const SALT_GAPS: &str = include_str!("fixtures/vendors/salt_gaps.json");

/// One request as the mock saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// What the mock answers: status, headers, body.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn reply(status: u16, body: impl Into<String>) -> Reply {
    Reply {
        status,
        headers: vec![("content-type", "application/json".to_string())],
        body: body.into(),
    }
}

type Script = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

#[derive(Clone)]
struct Mock {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Script,
}

async fn handle(State(mock): State<Mock>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let url = reqwest::Url::parse(&format!("http://mock{}", parts.uri)).unwrap();
    let seen = Seen {
        method: parts.method.to_string(),
        path: url.path().to_string(),
        query: url.query_pairs().into_owned().collect(),
        headers: parts.headers,
        body: body.to_vec(),
    };
    let r = (mock.script)(&seen);
    mock.seen.lock().unwrap().push(seen);
    let mut resp = Response::builder().status(r.status);
    for (k, v) in r.headers {
        resp = resp.header(k, v);
    }
    resp.body(Body::from(r.body)).unwrap()
}

/// Starts the mock on 127.0.0.1:0; returns its base URL and the requests log.
async fn serve(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> (String, Mock) {
    let mock = Mock {
        seen: Arc::default(),
        script: Arc::new(script),
    };
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), mock)
}

impl Mock {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn instance(vendor: &str, url: Option<String>) -> InstanceConfig {
    InstanceConfig {
        vendor: vendor.to_string(),
        url,
        organization: (vendor == "codethreat").then(|| "acme".to_string()),
        timeout: Some(Duration::from_secs(5)),
        resolved_token: Some(Secret::new(TOKEN)),
        ..Default::default()
    }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(5),
    }
}

/// A connector for `vendor` at `url`, plus a handle on its HTTP client's counters.
fn connector(inst: &InstanceConfig) -> (Box<dyn Vendor>, HttpClient) {
    let http = HttpClient::for_instance(inst)
        .unwrap()
        .with_retry_policy(fast_retries());
    let spec = vendors::spec(&inst.vendor).unwrap();
    ((spec.build)(inst, http.clone()).unwrap(), http)
}

/// The token must not leak through any message or debug output.
fn assert_no_token(err: &VendorError) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(TOKEN), "token leaked: {shown}");
    assert!(!shown.contains("SECRET"), "token leaked: {shown}");
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn decoded_q(seen: &Seen) -> Value {
    let q = base64::engine::general_purpose::STANDARD
        .decode(&seen.query["q"])
        .unwrap();
    serde_json::from_slice(&q).unwrap()
}

fn assert_codethreat_headers(seen: &Seen) {
    assert_eq!(seen.header("authorization"), format!("Bearer {TOKEN}"));
    assert_eq!(seen.header("x-ct-organization"), "acme");
    assert!(seen.header("user-agent").starts_with("scansync/"));
}

#[tokio::test]
async fn codethreat_issues_map_field_by_field_and_pages_zero_means_one_body() {
    let (base, mock) = serve(|_| {
        let mut r = reply(200, ISSUES);
        r.headers
            .push(("x-ct-pager", b64(r#"{"id":"pg-1","pages":0}"#)));
        r
    })
    .await;
    let inst = instance("codethreat", Some(format!("{base}/codethreat/")));
    let (ct, _) = connector(&inst);
    let mut pages = ct.findings("shop", Some("scan-1")).await.unwrap();
    let page = pages.next_page().await.unwrap().unwrap();
    assert!(pages.next_page().await.unwrap().is_none());

    let seen = mock.seen();
    assert_eq!(seen.len(), 1, "pages == 0: the first body is everything");
    let req = &seen[0];
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, "/codethreat/api/scanlog/issues");
    assert_eq!(decoded_q(req), json!({"projectName": "shop"}));
    assert_eq!(req.query["pageSize"], "500");
    assert_eq!(req.query["sid"], "scan-1");
    assert_codethreat_headers(req);

    let raws: Vec<&RawValue> = serde_json::from_str(ISSUES).unwrap();
    assert_eq!(page.len(), 3);
    for (f, raw) in page.iter().zip(&raws) {
        assert_eq!(f.raw, raw.get(), "raw is the vendor's JSON verbatim");
    }
    let link = format!("{base}/codethreat/issues?scan_id=scan-1&projectName=shop");
    let f = &page[0];
    assert_eq!(f.vendor_id.as_deref(), Some("ct-iss-001"));
    assert_eq!(f.title, "SQL Injection");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.vendor_status.as_deref(), Some("Open"));
    assert_eq!(f.cwe.as_deref(), Some("CWE-89"));
    assert_eq!(f.owasp.as_deref(), Some("A03:2021"));
    assert_eq!(f.rule_id.as_deref(), Some("sql_injection"));
    assert_eq!(
        f.location,
        Location::Code {
            path: "src/db/users.py".into(),
            start_line: Some(40),
            end_line: Some(42)
        }
    );
    assert_eq!(
        f.description.as_deref(),
        Some("User input reaches a SQL query.")
    );
    assert_eq!(f.remediation.as_deref(), Some("Use parameterized queries."));
    assert_eq!(f.vendor_url.as_deref(), Some(link.as_str()));
    assert_eq!(f.vendor_first_seen.as_deref(), Some("2026-11-01T10:00:00Z"));
    assert_eq!(f.vendor_last_seen.as_deref(), Some("2026-11-22T07:30:00Z"));

    let f = &page[1];
    assert_eq!(f.severity, Severity::Medium);
    assert_eq!(f.cwe.as_deref(), Some("CWE-79"));
    assert_eq!(f.owasp.as_deref(), Some("A03:2021"));
    assert_eq!(
        f.location,
        Location::Code {
            path: "web/templates/profile.html".into(),
            start_line: Some(7),
            end_line: None
        }
    );
    assert_eq!(f.vendor_first_seen.as_deref(), Some("2024-11-22T18:26:40Z"));
    assert_eq!(f.vendor_last_seen, None);

    // Sparse issue: title falls back to the weakness id, unknown severity word to info.
    let f = &page[2];
    assert_eq!(f.title, "hardcoded_secret");
    assert_eq!(f.severity, Severity::Info);
    assert_eq!(f.location, Location::Unknown);
    assert_eq!(f.cwe, None);
}

#[tokio::test]
async fn codethreat_pagination_follows_the_pager_to_the_end() {
    let (base, mock) = serve(|seen| match seen.query.get("page").map(String::as_str) {
        None => {
            let mut r = reply(200, ISSUES);
            r.headers
                .push(("x-ct-pager", b64(r#"{"id":"pg-9","pages":2}"#)));
            r
        }
        // As full as the first page until the last announced one, which may be short.
        Some("1") => reply(
            200,
            json!(["a", "b", "c"].map(
                |x| json!({"_id": format!("ct-page-1{x}"), "issue_state": {"severity": "low"}})
            ))
            .to_string(),
        ),
        Some(p) => reply(
            200,
            json!([{"_id": format!("ct-page-{p}"), "issue_state": {"severity": "low"}}])
                .to_string(),
        ),
    })
    .await;
    let inst = instance("codethreat", Some(base));
    let (ct, _) = connector(&inst);
    let mut pages = ct.findings("shop", None).await.unwrap();
    let mut ids = Vec::new();
    let mut page_count = 0;
    while let Some(page) = pages.next_page().await.unwrap() {
        page_count += 1;
        ids.extend(page.into_iter().map(|f| f.vendor_id.unwrap()));
    }
    assert_eq!(page_count, 3);
    assert_eq!(
        ids,
        [
            "ct-iss-001",
            "ct-iss-002",
            "ct-iss-003",
            "ct-page-1a",
            "ct-page-1b",
            "ct-page-1c",
            "ct-page-2"
        ]
    );
    let seen = mock.seen();
    assert_eq!(seen.len(), 3);
    assert!(!seen[0].query.contains_key("pid"));
    assert!(!seen[0].query.contains_key("sid"));
    for (req, page) in seen[1..].iter().zip(["1", "2"]) {
        assert_eq!(req.path, "/api/scanlog/issues");
        assert_eq!(req.query["pid"], "pg-9");
        assert_eq!(req.query["page"], page);
        assert_eq!(decoded_q(req), json!({"projectName": "shop"}));
        assert_codethreat_headers(req);
    }
}

/// Reads pages until the connector says the listing ended or failed; the issue count read.
async fn drain(pages: &mut Box<dyn vendors::FindingPages + '_>) -> (usize, Option<VendorError>) {
    let mut read = 0;
    loop {
        match pages.next_page().await {
            Ok(Some(page)) => read += page.len(),
            Ok(None) => return (read, None),
            Err(e) => return (read, Some(e)),
        }
    }
}

#[tokio::test]
async fn codethreat_empty_page_mid_listing_is_an_incomplete_listing_naming_the_page() {
    let issues = |n: usize, page: &str| {
        json!((0..n)
            .map(|i| json!({"_id": format!("p{page}-{i}")}))
            .collect::<Vec<_>>())
        .to_string()
    };
    let (base, mock) = serve(
        move |seen| match seen.query.get("page").map(String::as_str) {
            None => {
                let mut r = reply(200, issues(500, "0"));
                r.headers
                    .push(("x-ct-pager", b64(r#"{"id":"pg-3","pages":3}"#)));
                r
            }
            Some("2") => reply(200, "[]"),
            Some(p) => reply(200, issues(500, p)),
        },
    )
    .await;
    let (ct, _) = connector(&instance("codethreat", Some(base)));
    let mut pages = ct.findings("shop", None).await.unwrap();
    let (read, err) = drain(&mut pages).await;
    assert_eq!(
        read, 1_000,
        "the first body and page 1 came back before the lie"
    );
    let err = err.expect("the listing fails");
    match &err {
        VendorError::IncompleteListing { detail, url, .. } => {
            assert_eq!(detail, "page 2 of 3 was empty");
            assert!(url.contains("page=2"), "{url}");
        }
        other => panic!("expected an incomplete listing, got {other:?}"),
    }
    assert!(
        err.to_string().contains("nothing was marked fixed"),
        "{err}"
    );
    assert_eq!(mock.seen().len(), 3, "no page is read after the lie");
    assert!(pages.next_page().await.unwrap().is_none());
}

#[tokio::test]
async fn codethreat_full_first_page_without_pager_is_an_incomplete_listing() {
    let body = json!((0..500).map(|i| json!({"_id": i})).collect::<Vec<_>>()).to_string();
    let (base, _mock) = serve(move |_| reply(200, body.clone())).await;
    let (ct, _) = connector(&instance("codethreat", Some(base)));
    let mut pages = ct.findings("shop", None).await.unwrap();
    let (read, err) = drain(&mut pages).await;
    assert_eq!(read, 0);
    assert!(
        matches!(&err, Some(VendorError::IncompleteListing { detail, .. })
            if detail.contains("no x-ct-pager header")),
        "{err:?}"
    );
}

#[tokio::test]
async fn salt_end_offset_that_stays_put_is_an_incomplete_listing() {
    let (base, mock) = serve(|seen| {
        let offset = &seen.query["offset"];
        reply(
            200,
            json!({"response": [{"id": format!("gap-{offset}"), "hostname": "h"}],
                   "endOffset": 0})
            .to_string(),
        )
    })
    .await;
    let (salt, _) = connector(&instance("saltsecurity", Some(base)));
    let mut pages = salt.findings("h", None).await.unwrap();
    let (read, err) = drain(&mut pages).await;
    assert_eq!(read, 0);
    assert!(
        matches!(&err, Some(VendorError::IncompleteListing { detail, .. })
            if detail == "endOffset 0 does not move past offset 0 although 1 items came back"),
        "{err:?}"
    );
    assert_eq!(mock.seen().len(), 1);
}

#[tokio::test]
async fn salt_end_offset_that_skips_past_the_items_served_is_an_incomplete_listing() {
    // One gap at offset 0, then `endOffset` 500: offsets 1..499 would never be read.
    let (base, mock) = serve(|seen| {
        let offset = &seen.query["offset"];
        reply(
            200,
            json!({"response": [{"id": format!("gap-{offset}"), "hostname": "h"}],
                   "endOffset": 500})
            .to_string(),
        )
    })
    .await;
    let (salt, _) = connector(&instance("saltsecurity", Some(base)));
    let mut pages = salt.findings("h", None).await.unwrap();
    let (read, err) = drain(&mut pages).await;
    assert_eq!(read, 0);
    assert!(
        matches!(&err, Some(VendorError::IncompleteListing { detail, .. })
            if detail == "endOffset 500 skips past offset 1 (offset 0 + 1 items served): the gaps in between were never served"),
        "{err:?}"
    );
    assert_eq!(mock.seen().len(), 1);
}

#[tokio::test]
async fn salt_page_served_twice_is_an_incomplete_listing() {
    // Offsets 0 and 1 answer the same gap: the pager is stuck although endOffset moves.
    let (base, _mock) = serve(|seen| {
        let offset: u64 = seen.query["offset"].parse().unwrap();
        let items = if offset < 5 {
            json!([{"id": "gap-same", "hostname": "h"}])
        } else {
            json!([])
        };
        reply(
            200,
            json!({"response": items, "endOffset": offset + 1}).to_string(),
        )
    })
    .await;
    let (salt, _) = connector(&instance("saltsecurity", Some(base)));
    let mut pages = salt.findings("h", None).await.unwrap();
    let (read, err) = drain(&mut pages).await;
    assert_eq!(read, 1);
    assert!(
        matches!(&err, Some(VendorError::IncompleteListing { detail, .. })
            if detail == "the page at offset 1 repeats the page at offset 0"),
        "{err:?}"
    );
}

#[tokio::test]
async fn codethreat_project_link_is_used_when_no_scan_was_started() {
    let (base, _mock) = serve(|_| reply(200, r#"[{"_id":"a"}]"#)).await;
    let inst = instance("codethreat", Some(base.clone()));
    let (ct, _) = connector(&inst);
    let mut pages = ct.findings("my shop", None).await.unwrap();
    let page = pages.next_page().await.unwrap().unwrap();
    assert_eq!(
        page[0].vendor_url.as_deref(),
        Some(format!("{base}/projects/project-details/my%20shop?tenant=acme").as_str())
    );
    assert!(
        pages.next_page().await.unwrap().is_none(),
        "no pager header: one body"
    );
}

#[tokio::test]
async fn codethreat_start_scan_posts_the_contract_json_and_status_words_map() {
    let (base, mock) = serve(|seen| match (seen.method.as_str(), seen.path.as_str()) {
        ("POST", "/ct/api/scan/start") => reply(200, r#"{"error": false, "scan_id": "sc-77"}"#),
        ("GET", "/ct/api/scan/status/sc-77") => reply(200, STATUS_RUNNING),
        ("GET", "/ct/api/scan/status/sc-end") => reply(200, STATUS_END),
        ("GET", "/ct/api/scan/status/sc-bad") => reply(200, STATUS_FAILED),
        _ => reply(404, r#"{"error": true, "message": "no route"}"#),
    })
    .await;
    let inst = instance("codethreat", Some(format!("{base}/ct")));
    let (ct, _) = connector(&inst);
    assert!(ct.triggers_scans());
    let req = ScanRequest {
        bind_to: "shop".into(),
        branch: Some("main".into()),
        environment: None,
        tags: vec!["nightly".into()],
        metadata: BTreeMap::from([("ci".to_string(), "yes".to_string())]),
    };
    assert_eq!(ct.start_scan(&req).await.unwrap().as_deref(), Some("sc-77"));
    let seen = mock.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].header("content-type"), "application/json");
    assert_codethreat_headers(&seen[0]);
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        json!({"project": "shop", "branch": "main", "tags": ["nightly"], "metadata": {"ci": "yes"}})
    );

    assert_eq!(
        ct.scan_status("sc-77").await.unwrap(),
        ScanStatus::Running { progress: Some(42) }
    );
    assert_eq!(
        ct.scan_status("sc-end").await.unwrap(),
        ScanStatus::Finished
    );
    assert_eq!(
        ct.scan_status("sc-bad").await.unwrap(),
        ScanStatus::Failed {
            state: "failed".into(),
            message: Some("ERR500: repository could not be cloned".into())
        }
    );
}

#[tokio::test]
async fn codethreat_truncated_page_is_a_protocol_error_naming_the_url() {
    let truncated = &ISSUES[..ISSUES.len() / 2];
    let (base, _mock) = serve(move |_| reply(200, truncated)).await;
    let inst = instance("codethreat", Some(base));
    let (ct, _) = connector(&inst);
    let mut pages = ct.findings("shop", None).await.unwrap();
    let err = pages.next_page().await.unwrap_err();
    assert_no_token(&err);
    match &err {
        VendorError::Protocol { url, .. } => assert!(url.contains("/api/scanlog/issues"), "{url}"),
        other => panic!("expected Protocol, got {other:?}"),
    }
}

#[tokio::test]
async fn codethreat_test_connection_tells_token_organization_and_url_apart() {
    let (base, mock) = serve(|seen| {
        if seen.path != "/api/organization" {
            return Reply {
                status: 404,
                headers: vec![("content-type", "text/html".to_string())],
                body: "<html><body>Not Found</body></html>".into(),
            };
        }
        if seen.header("authorization") != format!("Bearer {TOKEN}") {
            return reply(401, r#"{"error": true, "message": "Unauthorized"}"#);
        }
        match seen.query["key"].as_str() {
            "acme" => reply(200, r#"{"name": "acme"}"#),
            org => reply(
                403,
                json!({"error": true, "message": format!("organization {org} is not permitted")})
                    .to_string(),
            ),
        }
    })
    .await;

    let good = instance("codethreat", Some(base.clone()));
    connector(&good).0.test_connection().await.unwrap();
    let seen = mock.seen();
    assert_eq!(seen[0].path, "/api/organization");
    assert_eq!(seen[0].query["key"], "acme");
    assert_codethreat_headers(&seen[0]);

    let mut bad_token = good.clone();
    bad_token.resolved_token = Some(Secret::new("tok-wrong-SECRET"));
    let err = connector(&bad_token).0.test_connection().await.unwrap_err();
    assert!(
        matches!(err, VendorError::TokenRejected { status: 401, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("Settings → Access Token"));
    assert!(!format!("{err} {err:?}").contains("tok-wrong"));
    assert_no_token(&err);

    let mut bad_org = good.clone();
    bad_org.organization = Some("Acme".into());
    let err = connector(&bad_org).0.test_connection().await.unwrap_err();
    assert!(
        matches!(&err, VendorError::OrganizationRejected { organization, status: 403, .. } if organization == "Acme"),
        "{err:?}"
    );
    assert_no_token(&err);

    let wrong_url = instance("codethreat", Some(format!("{base}/not-codethreat")));
    let err = connector(&wrong_url).0.test_connection().await.unwrap_err();
    assert!(matches!(err, VendorError::WrongUrl { .. }), "{err:?}");
    assert_no_token(&err);
}

#[tokio::test]
async fn http_429_with_retry_after_waits_and_then_succeeds() {
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let (base, mock) = serve(move |_| {
        let mut n = counter.lock().unwrap();
        *n += 1;
        if *n == 1 {
            let mut r = reply(429, r#"{"message": "slow down"}"#);
            r.headers.push(("retry-after", "1".to_string()));
            r
        } else {
            reply(200, r#"[{"_id": "after-retry"}]"#)
        }
    })
    .await;
    let inst = instance("codethreat", Some(base));
    let (ct, http) = connector(&inst);
    let mut pages = ct.findings("shop", None).await.unwrap();
    let page = pages.next_page().await.unwrap().unwrap();
    assert_eq!(page[0].vendor_id.as_deref(), Some("after-retry"));
    assert_eq!(mock.seen().len(), 2);
    assert_eq!(http.retries_total(), 1);
    assert!(
        http.retry_wait_total_ms() >= 1000,
        "waited {} ms, Retry-After said 1 s",
        http.retry_wait_total_ms()
    );
}

#[tokio::test]
async fn http_500_forever_fails_after_max_attempts() {
    let (base, mock) = serve(|_| reply(500, r#"{"message": "internal"}"#)).await;
    let inst = instance("codethreat", Some(base));
    let (ct, http) = connector(&inst);
    let err = ct.scan_status("sc-1").await.unwrap_err();
    assert_no_token(&err);
    assert!(
        matches!(&err, VendorError::Http { status: 500, message, .. } if message == "internal"),
        "{err:?}"
    );
    assert_eq!(mock.seen().len(), fast_retries().max_attempts as usize);
    assert_eq!(http.retries_total(), 4);
}

#[tokio::test]
async fn http_404_is_not_retried_and_reads_as_an_unknown_project() {
    let (base, mock) =
        serve(|_| reply(404, r#"{"error": true, "message": "project not found"}"#)).await;
    let inst = instance("codethreat", Some(base));
    let (ct, http) = connector(&inst);
    let err = ct.resolve_target("nope").await.unwrap_err();
    assert_no_token(&err);
    assert!(
        matches!(&err, VendorError::TargetNotFound { name, .. } if name == "nope"),
        "{err:?}"
    );
    assert_eq!(mock.seen().len(), 1);
    assert_eq!(http.retries_total(), 0);
    assert_eq!(mock.seen()[0].path, "/api/project");
    assert_eq!(mock.seen()[0].query["key"], "nope");
}

#[tokio::test]
async fn refused_connection_is_a_network_error_after_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let inst = instance("codethreat", Some(format!("http://{addr}")));
    let (ct, http) = connector(&inst);
    let err = ct.test_connection().await.unwrap_err();
    assert_no_token(&err);
    assert!(matches!(err, VendorError::Network { .. }), "{err:?}");
    assert_eq!(http.requests_total(), 5);
}

fn salt_page(offset: &str) -> Reply {
    match offset {
        "0" => reply(200, SALT_GAPS),
        "3" => reply(
            200,
            json!({"response": [{"id": "gap-p2", "name": "n2", "severity": "Low",
                "hostname": "payments.example.com", "method": "PUT", "path": "/a"}], "endOffset": 4})
            .to_string(),
        ),
        "4" => reply(
            200,
            json!({"response": [{"id": "gap-p3", "name": "n3", "severity": "Info",
                "hostname": "payments.example.com", "method": "GET", "path": "/b"}], "endOffset": 5})
            .to_string(),
        ),
        _ => reply(200, r#"{"response": [], "endOffset": 5}"#),
    }
}

#[tokio::test]
async fn salt_gaps_follow_end_offset_to_the_empty_page_and_map_field_by_field() {
    let (base, mock) = serve(|seen| salt_page(&seen.query["offset"])).await;
    let inst = instance("saltsecurity", Some(format!("{base}/salt")));
    let (salt, _) = connector(&inst);
    assert!(!salt.triggers_scans());
    assert_eq!(
        salt.start_scan(&ScanRequest::default()).await.unwrap(),
        None
    );
    let mut pages = salt.findings("payments.example.com", None).await.unwrap();
    let mut all = Vec::new();
    let mut page_count = 0;
    while let Some(page) = pages.next_page().await.unwrap() {
        page_count += 1;
        all.extend(page);
    }
    assert_eq!(page_count, 3);
    let ids: Vec<_> = all.iter().map(|f| f.vendor_id.clone().unwrap()).collect();
    assert_eq!(
        ids,
        ["gap-7f3c01", "gap-7f3c02", "gap-p2", "gap-p3"],
        "other host filtered out"
    );

    let seen = mock.seen();
    let offsets: Vec<_> = seen.iter().map(|s| s.query["offset"].as_str()).collect();
    assert_eq!(offsets, ["0", "3", "4", "5"]);
    for req in &seen {
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/salt/v1/apigovern/posture/gaps");
        assert_eq!(req.query["limit"], "100");
        assert_eq!(req.query["hostname"], "payments.example.com");
        assert_eq!(req.header("authorization"), format!("Bearer {TOKEN}"));
        assert_eq!(req.header("accept"), "application/json");
        assert!(req.header("user-agent").starts_with("scansync/"));
    }

    let envelope: BTreeMap<String, Box<RawValue>> = serde_json::from_str(SALT_GAPS).unwrap();
    let raws: Vec<&RawValue> = serde_json::from_str(envelope["response"].get()).unwrap();
    let f = &all[0];
    assert_eq!(f.raw, raws[0].get());
    assert_eq!(all[1].raw, raws[2].get());
    assert_eq!(f.title, "Sensitive data exposed in response");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.vendor_status.as_deref(), Some("Open"));
    assert_eq!(
        f.owasp.as_deref(),
        Some("API3:2023 Broken Object Property Level Authorization")
    );
    assert_eq!(
        f.rule_id.as_deref(),
        Some("Sensitive data exposed in response")
    );
    assert_eq!(f.cwe, None);
    assert_eq!(
        f.location,
        Location::Api {
            method: "GET".into(),
            path: "/v1/accounts/{id}".into(),
            host: "payments.example.com".into()
        }
    );
    assert_eq!(
        f.description.as_deref(),
        Some("The response carries card numbers.")
    );
    assert_eq!(
        f.remediation.as_deref(),
        Some("Filter the response fields.")
    );
    assert_eq!(f.vendor_url, None);
    assert_eq!(f.vendor_first_seen.as_deref(), Some("2026-11-01T10:00:00Z"));
    assert_eq!(f.vendor_last_seen.as_deref(), Some("2026-11-22T08:00:00Z"));
    assert_eq!(all[1].severity, Severity::Critical);
    assert_eq!(
        all[1].location,
        Location::Api {
            method: "DELETE".into(),
            path: "/v1/accounts/{id}".into(),
            host: "PAYMENTS.example.com".into()
        }
    );
}

#[tokio::test]
async fn salt_targets_come_from_the_inventory_and_unknown_hosts_are_not_found() {
    let (base, mock) = serve(
        |seen| match (seen.path.as_str(), seen.query["offset"].as_str()) {
            ("/v1/inventory/endpoints", "0") => reply(
                200,
                json!({"response": [
                {"hostname": "payments.example.com", "path": "/a"},
                {"hostname": "payments.example.com", "path": "/b"},
                {"hostname": "shop.example.com", "path": "/c"}], "endOffset": 3})
                .to_string(),
            ),
            ("/v1/inventory/endpoints", _) => reply(200, r#"{"response": []}"#),
            ("/v1/apigovern/posture/gaps", _) => reply(200, SALT_GAPS),
            _ => reply(404, "{}"),
        },
    )
    .await;
    let inst = instance("saltsecurity", Some(base));
    let (salt, _) = connector(&inst);
    let names: Vec<_> = salt
        .list_targets()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["payments.example.com", "shop.example.com"]);
    assert_eq!(
        salt.resolve_target("shop.example.com").await.unwrap().name,
        "shop.example.com"
    );
    // Not in the inventory, but Salt reports gaps for it.
    assert_eq!(
        salt.resolve_target("other.example.com").await.unwrap().name,
        "other.example.com"
    );
    let err = salt.resolve_target("ghost.example.com").await.unwrap_err();
    assert_no_token(&err);
    assert!(matches!(err, VendorError::TargetNotFound { .. }), "{err:?}");
    assert!(mock
        .seen()
        .iter()
        .all(|s| s.query["limit"] == "1000" || s.path.ends_with("/gaps")));
}

#[tokio::test]
async fn salt_test_connection_reads_one_gap_and_sorts_failures() {
    let (base, mock) = serve(|seen| match seen.header("authorization") {
        h if h == format!("Bearer {TOKEN}") => reply(200, r#"{"response": [], "endOffset": 0}"#),
        _ => reply(403, r#"{"message": "forbidden"}"#),
    })
    .await;
    let inst = instance("saltsecurity", Some(base.clone()));
    connector(&inst).0.test_connection().await.unwrap();
    let seen = mock.seen();
    assert_eq!(seen[0].path, "/v1/apigovern/posture/gaps");
    assert_eq!(seen[0].query["limit"], "1");
    assert_eq!(seen[0].query["offset"], "0");

    let mut bad = inst.clone();
    bad.resolved_token = Some(Secret::new("SECRET-but-wrong"));
    let err = connector(&bad).0.test_connection().await.unwrap_err();
    assert!(
        matches!(err, VendorError::TokenRejected { status: 403, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("read permission"));
    assert_no_token(&err);

    let (html_base, _m) = serve(|_| Reply {
        status: 200,
        headers: vec![("content-type", "text/html".to_string())],
        body: "<!doctype html><html></html>".into(),
    })
    .await;
    let err = connector(&instance("saltsecurity", Some(html_base)))
        .0
        .test_connection()
        .await
        .unwrap_err();
    assert!(matches!(err, VendorError::WrongUrl { .. }), "{err:?}");
}

#[test]
fn salt_region_picks_the_regional_api_base() {
    for (region, base) in [
        ("us", "https://api.secured-api.com"),
        ("eu", "https://api.secured-api-eu.com"),
    ] {
        let mut inst = instance("saltsecurity", None);
        inst.region = Some(region.into());
        let (salt, _) = connector(&inst);
        assert_eq!(salt.base_url(), base);
    }
}

fn tls_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

#[tokio::test]
async fn tls_certificate_from_an_unknown_ca_is_a_tls_error_with_the_ca_file_hint() {
    let base = common::tls_server("acme").await;
    let (ct, http) = connector(&instance("codethreat", Some(base)));
    let err = ct.test_connection().await.unwrap_err();
    assert_no_token(&err);
    assert!(matches!(err, VendorError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("ca_file"), "{err}");
    assert_eq!(http.requests_total(), 1, "a TLS failure is not retried");
}

#[tokio::test]
async fn tls_ca_file_makes_a_private_ca_trusted() {
    let base = common::tls_server("acme").await;
    let mut inst = instance("codethreat", Some(base));
    inst.ca_file = Some(tls_fixture("ca.pem"));
    connector(&inst).0.test_connection().await.unwrap();
}

#[tokio::test]
async fn tls_insecure_skips_verification() {
    let base = common::tls_server("acme").await;
    let mut inst = instance("codethreat", Some(base));
    inst.insecure = true;
    connector(&inst).0.test_connection().await.unwrap();
}

#[test]
fn unreadable_ca_file_is_a_setup_error_naming_the_file() {
    let mut inst = instance("codethreat", Some("https://127.0.0.1:1".into()));
    inst.ca_file = Some(tls_fixture("missing.pem"));
    let err = HttpClient::for_instance(&inst).unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
}

#[tokio::test]
async fn scan_start_answered_with_500_is_not_repeated() {
    let (base, mock) = serve(|_| reply(500, r#"{"message": "internal"}"#)).await;
    let (ct, _) = connector(&instance("codethreat", Some(base)));
    let req = ScanRequest {
        bind_to: "shop".into(),
        ..ScanRequest::default()
    };
    let err = ct.start_scan(&req).await.unwrap_err();
    assert_no_token(&err);
    assert!(
        matches!(err, VendorError::Http { status: 500, .. }),
        "{err:?}"
    );
    assert_eq!(
        mock.seen().len(),
        1,
        "a second POST could start a second scan"
    );
}

#[tokio::test]
async fn body_over_the_cap_is_refused() {
    let (base, _mock) = serve(|_| reply(200, ISSUES)).await;
    let inst = instance("codethreat", Some(base));
    let http = HttpClient::for_instance(&inst)
        .unwrap()
        .with_retry_policy(fast_retries())
        .with_body_cap(64);
    let ct = (vendors::spec("codethreat").unwrap().build)(&inst, http).unwrap();
    let err = ct
        .findings("shop", None)
        .await
        .unwrap()
        .next_page()
        .await
        .unwrap_err();
    assert_no_token(&err);
    assert!(
        matches!(&err, VendorError::Protocol { detail, .. } if detail.contains("64 bytes")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_server_echoing_the_token_in_its_error_does_not_leak_it() {
    let (base, _mock) = serve(|seen| {
        reply(
            400,
            json!({"error": true, "message": format!("bad header {}", seen.header("authorization"))})
                .to_string(),
        )
    })
    .await;
    let (ct, _) = connector(&instance("codethreat", Some(base)));
    let err = ct.scan_status("sc-1").await.unwrap_err();
    assert!(err.to_string().contains("[redacted]"), "{err}");
    assert_no_token(&err);
}

#[tokio::test]
async fn codethreat_projects_are_listed_and_resolved_per_contract() {
    let (base, mock) = serve(|seen| match seen.path.as_str() {
        "/api/projects" => reply(
            200,
            r#"{"data": [{"project_name": "shop", "type": "github"}, {"project_name": "billing", "type": "gitlab"}],
                "pagination": {"page_size": 100, "total": 2}}"#,
        ),
        "/api/project" if seen.query["key"] == "shop" => reply(200, r#"{"type": "github"}"#),
        _ => reply(404, r#"{"error": true, "message": "not found"}"#),
    })
    .await;
    let (ct, _) = connector(&instance("codethreat", Some(base.clone())));
    let targets = ct.list_targets().await.unwrap();
    let names: Vec<_> = targets
        .iter()
        .map(|t| (t.name.as_str(), t.kind.as_deref()))
        .collect();
    assert_eq!(
        names,
        [("shop", Some("github")), ("billing", Some("gitlab"))]
    );
    let seen = mock.seen();
    assert_eq!(seen.len(), 1, "total reached: no second page");
    assert_eq!(seen[0].query["page"], "1");
    assert_eq!(seen[0].query["pageSize"], "100");
    assert_codethreat_headers(&seen[0]);

    let shop = ct.resolve_target("shop").await.unwrap();
    assert_eq!(shop.kind.as_deref(), Some("github"));
    assert_eq!(
        shop.url.as_deref(),
        Some(format!("{base}/projects/project-details/shop?tenant=acme").as_str())
    );
}
