//! The vendor simulator against its contracts: driven over loopback HTTP with reqwest, in
//! process through `Simulator::start`, and once as the real `scansync simulator` binary.

use base64::Engine;
use reqwest::{Client, StatusCode};
use scansync::sim::data::project_findings;
use scansync::sim::{Fault, FaultKind, SimOptions, Simulator};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const TOKEN: &str = "sim-token";
const ORG: &str = "sim-org";

async fn start(opts: SimOptions) -> Simulator {
    Simulator::start(opts).await.expect("simulator starts")
}

fn options(projects: u32, findings_per_project: u32) -> SimOptions {
    SimOptions {
        projects,
        findings_per_project,
        scan_seconds: 0.0,
        ..SimOptions::default()
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A CodeThreat request with the right token and organization.
fn ct(
    client: &Client,
    sim: &Simulator,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    client
        .request(method, format!("{}{path}", sim.codethreat_url()))
        .bearer_auth(TOKEN)
        .header("x-ct-organization", ORG)
}

async fn ct_get(sim: &Simulator, path: &str) -> reqwest::Response {
    ct(&client(), sim, reqwest::Method::GET, path)
        .send()
        .await
        .unwrap()
}

async fn salt_get(sim: &Simulator, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", sim.salt_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
}

fn q_for(project: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(json!({ "projectName": project }).to_string())
}

fn pager(response: &reqwest::Response) -> Value {
    let header = response
        .headers()
        .get("x-ct-pager")
        .expect("x-ct-pager header");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(header.to_str().unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn start_scan(sim: &Simulator, project: &str) -> String {
    let r = ct(&client(), sim, reqwest::Method::POST, "/api/scan/start")
        .json(&json!({ "project": project, "branch": "main", "tags": [], "metadata": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], false);
    body["scan_id"].as_str().unwrap().to_string()
}

/// Walks the C form pager: first page, then `page=1..=pages`; returns every issue.
async fn walk_issues(
    sim: &Simulator,
    project: &str,
    sid: Option<&str>,
    page_size: u32,
) -> (Vec<Value>, Value) {
    let q = q_for(project);
    let sid_param = sid.map(|s| format!("&sid={s}")).unwrap_or_default();
    let first = ct_get(
        sim,
        &format!("/api/scanlog/issues?q={q}&pageSize={page_size}{sid_param}"),
    )
    .await;
    assert_eq!(first.status(), StatusCode::OK);
    let pager = pager(&first);
    let mut issues: Vec<Value> = first.json().await.unwrap();
    let pid = pager["id"].as_str().unwrap().to_string();
    for page in 1..=pager["pages"].as_u64().unwrap() {
        let r = ct_get(
            sim,
            &format!("/api/scanlog/issues?q={q}&pid={pid}&page={page}"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let more: Vec<Value> = r.json().await.unwrap();
        assert!(
            !more.is_empty(),
            "page {page} of {} is empty",
            pager["pages"]
        );
        issues.extend(more);
    }
    (issues, pager)
}

/// Walks Salt's offset listing until an empty `response`.
async fn walk_gaps(sim: &Simulator, hostname: Option<&str>, limit: u32) -> Vec<Value> {
    let host = hostname
        .map(|h| format!("&hostname={h}"))
        .unwrap_or_default();
    let mut offset = 0u64;
    let mut all = Vec::new();
    for _ in 0..10_000 {
        let r = salt_get(
            sim,
            &format!("/v1/apigovern/posture/gaps?limit={limit}&offset={offset}{host}"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        let page = body["response"].as_array().unwrap().clone();
        if page.is_empty() {
            return all;
        }
        offset = body["endOffset"].as_u64().unwrap();
        all.extend(page);
    }
    panic!("the salt listing never ended");
}

fn ids(issues: &[Value]) -> Vec<String> {
    issues
        .iter()
        .map(|i| i["_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn refuses_to_listen_outside_loopback() {
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
        let opts = SimOptions {
            listen: addr.parse().unwrap(),
            ..SimOptions::default()
        };
        let err = Simulator::start(opts).await.err().expect("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}

#[tokio::test]
async fn codethreat_rejects_bad_token_with_401_and_wrong_organization_with_403() {
    let sim = start(options(1, 10)).await;
    let url = format!("{}/api/organization?key={ORG}", sim.codethreat_url());
    let r = client()
        .get(&url)
        .header("x-ct-organization", ORG)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client()
        .get(&url)
        .bearer_auth("wrong")
        .header("x-ct-organization", ORG)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], true);
    let r = client()
        .get(&url)
        .bearer_auth(TOKEN)
        .header("x-ct-organization", "other-org")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("other-org"));
    let r = ct_get(&sim, &format!("/api/organization?key={ORG}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let requests = sim.requests();
    assert_eq!(requests.len(), 4);
    assert!(!requests[0].auth_valid && requests[0].organization_valid == Some(true));
    assert!(requests[2].auth_valid && requests[2].organization_valid == Some(false));
    assert_eq!(requests[3].path, "/codethreat/api/organization");
    assert_eq!(requests[3].query.as_deref(), Some("key=sim-org"));
    sim.shutdown().await;
}

#[tokio::test]
async fn salt_rejects_missing_token_with_401_and_wrong_token_with_403() {
    let sim = start(options(1, 10)).await;
    let url = format!(
        "{}/v1/apigovern/posture/gaps?limit=1&offset=0",
        sim.salt_url()
    );
    assert_eq!(
        client().get(&url).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client()
            .get(&url)
            .bearer_auth("nope")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        client()
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn codethreat_projects_can_be_looked_up_listed_and_added() {
    let sim = start(options(3, 10)).await;
    let r = ct_get(&sim, "/api/project?key=project-2").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["type"], "github");
    assert_eq!(
        ct_get(&sim, "/api/project?key=nope").await.status(),
        StatusCode::NOT_FOUND
    );
    let r = ct(&client(), &sim, reqwest::Method::POST, "/api/project/add")
        .json(&json!({ "project_name": "added", "description": "d", "tags": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": false, "result": {"message": "successfull"}})
    );
    assert_eq!(
        ct_get(&sim, "/api/project?key=added").await.status(),
        StatusCode::OK
    );
    let list: Value = ct_get(&sim, "/api/projects?page=1&pageSize=3")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["pagination"]["total"], 4);
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
    let list: Value = ct_get(&sim, "/api/projects?page=2&pageSize=3")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["project_name"], "added");
    sim.shutdown().await;
}

#[tokio::test]
async fn codethreat_scan_goes_through_queued_running_to_end_with_generation_counts() {
    let sim = start(SimOptions {
        scan_seconds: 0.5,
        ..options(2, 40)
    })
    .await;
    let sid = start_scan(&sim, "project-1").await;
    let mut states = Vec::new();
    let mut last = Value::Null;
    for _ in 0..200 {
        let r = ct_get(&sim, &format!("/api/scan/status/{sid}")).await;
        assert_eq!(r.status(), StatusCode::OK);
        last = r.json().await.unwrap();
        let state = last["state"].as_str().unwrap().to_string();
        if states.last() != Some(&state) {
            states.push(state.clone());
        }
        if state == "end" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(states.last().map(String::as_str), Some("end"), "{states:?}");
    let order = ["queued", "running", "end"];
    let positions: Vec<usize> = states
        .iter()
        .map(|s| order.iter().position(|o| o == s).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{states:?}");
    assert_eq!(last["progress_data"]["progress"], 100);
    let sev = &last["severities"];
    let sum: u64 = ["critical", "high", "medium", "low"]
        .iter()
        .map(|k| sev[k].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 40);
    assert!(last["ended_at"].as_i64().unwrap() >= last["started_at"].as_i64().unwrap());
    let report: Value = ct_get(&sim, &format!("/api/plugins/helper?sid={sid}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["report"]["total"], 40);
    assert_eq!(
        ct_get(&sim, "/api/scan/status/unknown").await.status(),
        StatusCode::NOT_FOUND
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn codethreat_scan_start_accepts_the_cli_multipart_upload_and_refuses_unknown_projects() {
    let sim = start(options(2, 5)).await;
    // The shape CodeThreat's CLI sends: text fields plus the zip as `upfile`.
    let body =
        b"--sim-boundary\r\nContent-Disposition: form-data; name=\"project\"\r\n\r\nproject-2\r\n\
--sim-boundary\r\nContent-Disposition: form-data; name=\"branch\"\r\n\r\ndev\r\n\
--sim-boundary\r\nContent-Disposition: form-data; name=\"scan_source\"\r\n\r\nCLI\r\n\
--sim-boundary\r\nContent-Disposition: form-data; name=\"upfile\"; filename=\"src.zip\"\r\n\
Content-Type: application/zip\r\n\r\nPK\x03\x04zip\r\n--sim-boundary--\r\n";
    let r = ct(&client(), &sim, reqwest::Method::POST, "/api/scan/start")
        .header("content-type", "multipart/form-data; boundary=sim-boundary")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let sid = r.json::<Value>().await.unwrap()["scan_id"]
        .as_str()
        .unwrap()
        .to_string();
    let status: Value = ct_get(&sim, &format!("/api/scan/status/{sid}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["project_name"], "project-2");
    let r = ct(&client(), &sim, reqwest::Method::POST, "/api/scan/start")
        .json(&json!({ "project": "missing" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], true);
    let r = ct(
        &client(),
        &sim,
        reqwest::Method::POST,
        "/api/integration/github/start",
    )
    .json(&json!({ "project": "project-1", "branch": "main", "action": true }))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    sim.shutdown().await;
}

#[tokio::test]
async fn pager_walk_returns_each_finding_once_with_further_pages_counted() {
    let sim = start(options(2, 250)).await;
    let sid = start_scan(&sim, "project-2").await;
    let (issues, pager) = walk_issues(&sim, "project-2", Some(&sid), 100).await;
    assert_eq!(pager["pages"], 2);
    assert_eq!(pager["total"], 250);
    let got = ids(&issues);
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 250);
    let expected: Vec<String> = project_findings(1, 2, 250, 0.0, 0).map(|f| f.id).collect();
    assert_eq!(got, expected);
    let first = &issues[0];
    assert!(first["issue_state"]["weakness_id"].is_string());
    assert!(["critical", "high", "medium", "low"]
        .contains(&first["issue_state"]["severity"].as_str().unwrap()));
    assert_eq!(first["issue_state"]["status"], "Open");
    assert!(first["issue_state"]["location"]["file_path"].is_string());
    assert!(first["kb_fields"]["title"]["en"].is_string());
    assert!(first["kb_fields"]["cwe"]
        .as_str()
        .unwrap()
        .starts_with("CWE-"));

    let (issues, pager) = walk_issues(&sim, "project-2", None, 250).await;
    assert_eq!(pager["pages"], 0);
    assert_eq!(issues.len(), 250);
    let (issues, pager) = walk_issues(&sim, "project-2", None, 1000).await;
    assert_eq!(pager["pages"], 0);
    assert_eq!(issues.len(), 250);
    sim.shutdown().await;
}

#[tokio::test]
async fn newer_post_issues_form_pages_from_one_with_totals() {
    let sim = start(options(2, 30)).await;
    let r = ct(
        &client(),
        &sim,
        reqwest::Method::POST,
        "/api/scanlog/issues?pageSize=25&page=2",
    )
    .json(&json!({ "projectName": "project-1" }))
    .send()
    .await
    .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["pagination"]["total"], 30);
    assert_eq!(body["pagination"]["page_size"], 25);
    assert_eq!(body["data"].as_array().unwrap().len(), 5);
    let r = ct(
        &client(),
        &sim,
        reqwest::Method::POST,
        "/api/scanlog/issues?pageSize=50&page=1",
    )
    .json(&json!({}))
    .send()
    .await
    .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["pagination"]["total"], 60);
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 50);
    assert_eq!(data[29]["project_name"], "project-1");
    assert_eq!(data[30]["project_name"], "project-2");
    sim.shutdown().await;
}

#[tokio::test]
async fn salt_offset_walk_ends_with_an_empty_response_and_returns_the_whole_set() {
    let sim = start(options(3, 70)).await;
    let gaps = walk_gaps(&sim, Some("project-2"), 30).await;
    assert_eq!(gaps.len(), 70);
    assert!(gaps.iter().all(|g| g["hostname"] == "project-2"));
    let expected: Vec<String> = project_findings(1, 2, 70, 0.0, 0)
        .map(|f| f.salt_id())
        .collect();
    let got: Vec<String> = gaps
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, expected);
    for key in [
        "name",
        "severity",
        "status",
        "category",
        "method",
        "path",
        "description",
        "remediation",
        "firstSeen",
        "lastSeen",
    ] {
        assert!(gaps[0][key].is_string(), "{key}");
    }
    let all = walk_gaps(&sim, None, 100).await;
    assert_eq!(all.len(), 210);
    assert!(walk_gaps(&sim, Some("unknown-host"), 10).await.is_empty());
    for path in [
        "/v1/inventory/endpoints?limit=5&offset=0",
        "/v1/cloud-connect/cloud-assets",
        "/v1/cloud-assets",
        "/v1/vulnerabilities?hostname=project-1",
    ] {
        let body: Value = salt_get(&sim, path).await.json().await.unwrap();
        assert!(!body["response"].as_array().unwrap().is_empty(), "{path}");
        assert!(body["endOffset"].is_u64(), "{path}");
    }
    for path in [
        "/v1/inventory/oas-swagger?hostname=project-1",
        "/v1/unified-inventory/oas-swagger?hostname=project-1",
    ] {
        let body: Value = salt_get(&sim, path).await.json().await.unwrap();
        assert_eq!(body["openapi"], "3.0.3");
        assert!(body["paths"]["/v1/payments/{id}"]["get"].is_object());
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn churn_zero_returns_identical_findings_across_scans_and_salt_generations() {
    let sim = start(options(1, 120)).await;
    let s1 = start_scan(&sim, "project-1").await;
    let s2 = start_scan(&sim, "project-1").await;
    let (a, _) = walk_issues(&sim, "project-1", Some(&s1), 50).await;
    let (b, _) = walk_issues(&sim, "project-1", Some(&s2), 50).await;
    // Whole issues, timestamps included: an unchanged finding serves the same bytes.
    assert_eq!(a.len(), 120);
    assert_eq!(a, b);
    let before = walk_gaps(&sim, Some("project-1"), 50).await;
    sim.advance();
    let after = walk_gaps(&sim, Some("project-1"), 50).await;
    assert_eq!(before.len(), 120);
    assert_eq!(before, after);
    sim.shutdown().await;
}

#[tokio::test]
async fn churn_fixes_adds_and_moves_findings_and_brings_fixed_ones_back() {
    let sim = start(SimOptions {
        churn: 20.0,
        ..options(1, 600)
    })
    .await;
    let mut generations = Vec::new();
    for g in 0..3u64 {
        let sid = start_scan(&sim, "project-1").await;
        let (issues, _) = walk_issues(&sim, "project-1", Some(&sid), 200).await;
        let expected: Vec<String> = project_findings(1, 1, 600, 20.0, g).map(|f| f.id).collect();
        assert_eq!(ids(&issues), expected, "generation {g}");
        let by_id: HashMap<String, u64> = issues
            .iter()
            .map(|i| {
                (
                    i["_id"].as_str().unwrap().to_string(),
                    i["issue_state"]["location"]["start_line"].as_u64().unwrap(),
                )
            })
            .collect();
        generations.push(by_id);
    }
    let (g0, g1, g2) = (&generations[0], &generations[1], &generations[2]);
    let fixed: Vec<_> = g0.keys().filter(|id| !g1.contains_key(*id)).collect();
    let new: Vec<_> = g1.keys().filter(|id| !g0.contains_key(*id)).collect();
    let moved: Vec<_> = g1
        .iter()
        .filter(|(id, line)| g0.get(*id).is_some_and(|l| l != *line))
        .collect();
    let reopened: Vec<_> = fixed.iter().filter(|id| g2.contains_key(**id)).collect();
    assert!(
        !fixed.is_empty() && !new.is_empty() && !moved.is_empty() && !reopened.is_empty(),
        "fixed {} new {} moved {} reopened {}",
        fixed.len(),
        new.len(),
        moved.len(),
        reopened.len()
    );

    let before = walk_gaps(&sim, Some("project-1"), 100).await;
    let r = client()
        .post(format!("http://{}/__sim/advance", sim.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["generation"], 1);
    let after = walk_gaps(&sim, Some("project-1"), 100).await;
    let expected: Vec<String> = project_findings(1, 1, 600, 20.0, 1)
        .map(|f| f.salt_id())
        .collect();
    let got: Vec<String> = after
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, expected);
    assert_ne!(before, after);
    sim.shutdown().await;
}

#[tokio::test]
async fn same_seed_serves_the_same_bytes_and_another_seed_does_not() {
    let mut bodies = Vec::new();
    for seed in [5, 5, 6] {
        let sim = start(SimOptions {
            seed,
            ..options(2, 80)
        })
        .await;
        let ct_body = ct_get(
            &sim,
            &format!("/api/scanlog/issues?q={}&pageSize=80", q_for("project-2")),
        )
        .await
        .bytes()
        .await
        .unwrap();
        let salt_body = salt_get(&sim, "/v1/apigovern/posture/gaps?limit=200&offset=0")
            .await
            .bytes()
            .await
            .unwrap();
        bodies.push((ct_body, salt_body));
        sim.shutdown().await;
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_ne!(bodies[0].0, bodies[2].0);
    assert_ne!(bodies[0].1, bodies[2].1);
}

#[tokio::test]
async fn fault_429_hits_the_first_n_requests_with_retry_after_then_lets_through() {
    let sim = start(SimOptions {
        faults: vec!["429:x2".parse().unwrap()],
        ..options(1, 5)
    })
    .await;
    for _ in 0..2 {
        let r = salt_get(&sim, "/v1/apigovern/posture/gaps").await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "1");
    }
    assert_eq!(
        salt_get(&sim, "/v1/apigovern/posture/gaps").await.status(),
        StatusCode::OK
    );
    let health = client()
        .get(format!("http://{}/__sim/health", sim.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_500_html_and_truncated_break_responses_the_way_they_say() {
    let sim = start(options(1, 50)).await;
    let issues_path = format!("/api/scanlog/issues?q={}&pageSize=50", q_for("project-1"));

    sim.set_faults(vec![Fault::always(FaultKind::Status500)]);
    assert_eq!(
        ct_get(&sim, &issues_path).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let health = client()
        .get(format!("http://{}/__sim/health", sim.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "admin routes are never faulted"
    );

    sim.set_faults(vec![Fault::always(FaultKind::Html)]);
    let statuses: Vec<StatusCode> = futures_statuses(&sim, &issues_path, 2).await;
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_GATEWAY]);
    let r = ct_get(&sim, &issues_path).await;
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.text().await.unwrap().starts_with("<!DOCTYPE html>"));

    sim.set_faults(vec![Fault::first(FaultKind::Truncated, 1)]);
    let org = ct_get(&sim, &format!("/api/organization?key={ORG}")).await;
    assert_eq!(
        org.status(),
        StatusCode::OK,
        "truncation only hits findings pages"
    );
    org.json::<Value>().await.unwrap();
    let r = ct_get(&sim, &issues_path).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.bytes().await.unwrap();
    assert!(!body.is_empty());
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    let r = ct_get(&sim, &issues_path).await;
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 50);
    sim.shutdown().await;
}

async fn futures_statuses(sim: &Simulator, path: &str, n: usize) -> Vec<StatusCode> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(ct_get(sim, path).await.status());
    }
    out
}

#[tokio::test]
async fn timeout_fault_holds_the_request_until_the_client_gives_up() {
    let sim = start(SimOptions {
        faults: vec![Fault::first(FaultKind::Timeout, 1)],
        ..options(1, 5)
    })
    .await;
    let impatient = Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = impatient
        .get(format!("{}/v1/apigovern/posture/gaps", sim.salt_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect_err("held past the client timeout");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        salt_get(&sim, "/v1/apigovern/posture/gaps").await.status(),
        StatusCode::OK
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_are_404_json_under_a_prefix_and_plain_text_elsewhere() {
    let sim = start(options(1, 5)).await;
    let r = ct_get(&sim, "/api/nothing-here").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], true);
    let r = salt_get(&sim, "/v2/whatever").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], true);
    let r = client()
        .get(format!("http://{}/api/organization", sim.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    sim.shutdown().await;
}

#[tokio::test]
async fn write_config_points_both_vendors_at_the_simulator() {
    let sim = start(options(1, 5)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scansync.toml");
    let store = dir.path().join("store").join("scansync.db");
    sim.write_config(&path, &store).unwrap();
    let config: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        config["store"]["path"].as_str().unwrap(),
        store.to_str().unwrap()
    );
    assert_eq!(config["daemon"]["poll_interval"].as_str(), Some("1s"));
    let ct = &config["instances"]["sim-codethreat"];
    assert_eq!(ct["vendor"].as_str(), Some("codethreat"));
    assert_eq!(ct["url"].as_str().unwrap(), sim.codethreat_url());
    assert_eq!(ct["organization"].as_str(), Some(ORG));
    // The token sits in a private file beside the config, not inline.
    let token_file = ct["token_file"].as_str().unwrap();
    assert_eq!(
        config["instances"]["sim-salt"]["token_file"].as_str(),
        Some(token_file)
    );
    let token_path = dir.path().join(token_file);
    assert_eq!(std::fs::read_to_string(&token_path).unwrap().trim(), TOKEN);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "token file mode {mode:o}");
    let salt = &config["instances"]["sim-salt"];
    assert_eq!(salt["vendor"].as_str(), Some("saltsecurity"));
    assert_eq!(salt["url"].as_str().unwrap(), sim.salt_url());
    let scans = config["scans"].as_array().unwrap();
    assert_eq!(scans.len(), 2);
    assert_eq!(scans[0]["instance"].as_str(), Some("sim-codethreat"));
    assert_eq!(scans[0]["bind_to"].as_str(), Some("project-1"));
    assert_eq!(scans[0]["branch"].as_str(), Some("main"));
    assert_eq!(scans[1]["instance"].as_str(), Some("sim-salt"));
    assert!(scans.iter().all(|s| s["schedule"].as_str() == Some("now")));
    sim.shutdown().await;
}

#[tokio::test]
async fn million_finding_configuration_serves_pages_deep_in_the_set() {
    let sim = start(options(10, 100_000)).await;
    let body: Value = salt_get(&sim, "/v1/apigovern/posture/gaps?limit=1000&offset=999500")
        .await
        .json()
        .await
        .unwrap();
    let page = body["response"].as_array().unwrap();
    assert_eq!(page.len(), 500);
    assert_eq!(body["endOffset"], 1_000_000);
    assert_eq!(page[499]["hostname"], "project-10");
    let last = project_findings(1, 10, 100_000, 0.0, 0).last().unwrap();
    assert_eq!(page[499]["id"].as_str().unwrap(), last.salt_id());
    let end: Value = salt_get(&sim, "/v1/apigovern/posture/gaps?limit=1000&offset=1000000")
        .await
        .json()
        .await
        .unwrap();
    assert!(end["response"].as_array().unwrap().is_empty());

    let q = q_for("project-7");
    let first = ct_get(&sim, &format!("/api/scanlog/issues?q={q}&pageSize=1000")).await;
    let pager = pager(&first);
    assert_eq!(pager["pages"], 99);
    assert_eq!(pager["total"], 100_000);
    let pid = pager["id"].as_str().unwrap();
    let r = ct_get(
        &sim,
        &format!("/api/scanlog/issues?q={q}&pid={pid}&page=99"),
    )
    .await;
    let issues: Vec<Value> = r.json().await.unwrap();
    assert_eq!(issues.len(), 1000);
    let last = project_findings(1, 7, 100_000, 0.0, 0).last().unwrap();
    assert_eq!(issues[999]["_id"].as_str().unwrap(), last.id);
    sim.shutdown().await;
}

#[test]
fn binary_prints_its_address_first_and_writes_a_config() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sim.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_scansync"))
        .args([
            "simulator",
            "--listen",
            "127.0.0.1:0",
            "--projects",
            "2",
            "--seed",
            "9",
            "--fault",
            "500:x1",
            "--write-config",
        ])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("listening on ")
        .expect("first line names the address")
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");
    assert_eq!(second, format!("config written to {}", config.display()));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&format!("{url}/codethreat")));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let statuses = runtime.block_on(async {
        let c = client();
        let mut out = Vec::new();
        for _ in 0..2 {
            let r = c
                .get(format!("{url}/salt/v1/cloud-assets"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            out.push(r.status());
        }
        out
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        statuses,
        [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::OK]
    );
}

#[test]
fn binary_refuses_a_non_loopback_listen_address() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scansync"))
        .args(["simulator", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

/// One raw CodeThreat issues page: its issues and its decoded pager, if any.
async fn ct_issues_page(sim: &Simulator, query: &str) -> (Vec<Value>, Option<Value>) {
    let r = ct_get(sim, &format!("/api/scanlog/issues?{query}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let pager = r.headers().contains_key("x-ct-pager").then(|| pager(&r));
    (r.json().await.unwrap(), pager)
}

/// One raw Salt gaps page: its gap ids and its endOffset.
async fn salt_gaps_page(sim: &Simulator, offset: u64) -> (Vec<String>, u64) {
    let r = salt_get(
        sim,
        &format!("/v1/apigovern/posture/gaps?limit=100&offset={offset}&hostname=project-1"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let gaps = body["response"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect();
    (gaps, body["endOffset"].as_u64().unwrap())
}

#[tokio::test]
async fn codethreat_deceptive_faults_lie_about_the_pager_the_way_they_say() {
    // 250 issues by 100: the first body and further pages 1 and 2.
    let sim = start(options(1, 250)).await;
    let q = q_for("project-1");
    let first = format!("q={q}&pageSize=100");
    let page = |i: u64| format!("q={q}&pid=pg-1-0-100&page={i}");
    let all: Vec<String> = project_findings(1, 1, 250, 0.0, 0).map(|f| f.id).collect();
    let (honest_1, _) = ct_issues_page(&sim, &page(1)).await;
    assert_eq!(ids(&honest_1), all[100..200]);

    sim.set_faults(vec!["no_pager".parse().unwrap()]);
    let (issues, pager) = ct_issues_page(&sim, &first).await;
    assert_eq!(issues.len(), 100, "a full first page");
    assert_eq!(pager, None, "without x-ct-pager");
    assert!(
        ct_issues_page(&sim, &page(1)).await.1.is_some(),
        "further pages keep it"
    );

    sim.set_faults(vec!["empty_page".parse().unwrap()]);
    assert_eq!(
        ct_issues_page(&sim, &first).await.0.len(),
        100,
        "first page untouched"
    );
    let (issues, pager) = ct_issues_page(&sim, &page(1)).await;
    assert!(issues.is_empty());
    assert_eq!(
        pager.unwrap()["pages"],
        2,
        "the pager still announces 2 further pages"
    );

    sim.set_faults(vec!["short_page".parse().unwrap()]);
    assert_eq!(ids(&ct_issues_page(&sim, &page(1)).await.0), all[100..150]);

    sim.set_faults(vec!["repeat_page".parse().unwrap()]);
    assert_eq!(ids(&ct_issues_page(&sim, &page(1)).await.0), all[..100]);
    assert_eq!(ids(&ct_issues_page(&sim, &page(2)).await.0), all[100..200]);

    sim.set_faults(vec!["endless_pager".parse().unwrap()]);
    let (issues, pager) = ct_issues_page(&sim, &first).await;
    assert_eq!(ids(&issues), all[..100]);
    let pager = pager.unwrap();
    assert_eq!(pager["pages"], 1_000_000);
    let pid = pager["id"].as_str().unwrap().to_string();
    let endless = |i: u64| format!("q={q}&pid={pid}&page={i}");
    assert_eq!(ids(&ct_issues_page(&sim, &endless(2)).await.0), all[200..]);
    assert_eq!(
        ids(&ct_issues_page(&sim, &endless(3)).await.0),
        all[..100],
        "past the data the listing starts over"
    );

    // `@N` counts only further pages: the second one is emptied, whatever came between.
    sim.set_faults(vec!["empty_page@2".parse().unwrap()]);
    assert_eq!(ct_issues_page(&sim, &first).await.0.len(), 100);
    assert_eq!(ct_issues_page(&sim, &page(1)).await.0.len(), 100);
    assert_eq!(ct_issues_page(&sim, &page(2)).await.0.len(), 0);
    assert_eq!(ct_issues_page(&sim, &page(2)).await.0.len(), 50);
    sim.shutdown().await;
}

#[tokio::test]
async fn salt_deceptive_faults_lie_about_the_offsets_the_way_they_say() {
    let sim = start(options(1, 250)).await;
    let all: Vec<String> = project_findings(1, 1, 250, 0.0, 0)
        .map(|f| f.salt_id())
        .collect();

    sim.set_faults(vec!["empty_page".parse().unwrap()]);
    assert_eq!(salt_gaps_page(&sim, 0).await, (all[..100].to_vec(), 100));
    assert_eq!(
        salt_gaps_page(&sim, 100).await,
        (vec![], 100),
        "an early end"
    );

    sim.set_faults(vec!["repeat_page".parse().unwrap()]);
    assert_eq!(salt_gaps_page(&sim, 100).await, (all[..100].to_vec(), 200));

    sim.set_faults(vec!["stuck_offset".parse().unwrap()]);
    assert_eq!(salt_gaps_page(&sim, 0).await, (all[..100].to_vec(), 0));

    sim.set_faults(vec!["endless_pager".parse().unwrap()]);
    assert_eq!(salt_gaps_page(&sim, 200).await, (all[200..].to_vec(), 300));
    assert_eq!(
        salt_gaps_page(&sim, 300).await,
        (all[..100].to_vec(), 400),
        "past the data the listing starts over and never ends"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn status_churn_emits_each_vendors_status_words_and_keeps_the_listed_set() {
    let sim = start(SimOptions {
        churn: 10.0,
        status_churn: 30.0,
        ..options(1, 600)
    })
    .await;
    // Generation 0: everything Open.
    let (issues, _) = walk_issues(&sim, "project-1", None, 500).await;
    assert!(issues.iter().all(|i| i["issue_state"]["status"] == "Open"));
    start_scan(&sim, "project-1").await;
    let sid = start_scan(&sim, "project-1").await;
    let (issues, _) = walk_issues(&sim, "project-1", Some(&sid), 500).await;
    let expected: Vec<String> = project_findings(1, 1, 600, 10.0, 1).map(|f| f.id).collect();
    assert_eq!(ids(&issues), expected, "status words change no identity");
    let words: HashSet<&str> = issues
        .iter()
        .map(|i| i["issue_state"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        words,
        HashSet::from(["Open", "ReCheck", "Fixed", "False Positive", "Accepted"])
    );

    sim.advance();
    let gaps = walk_gaps(&sim, Some("project-1"), 100).await;
    let words: HashSet<&str> = gaps.iter().map(|g| g["status"].as_str().unwrap()).collect();
    assert_eq!(
        words,
        HashSet::from(["Open", "Resolved", "False Positive", "Ignored"])
    );
    sim.shutdown().await;
}
