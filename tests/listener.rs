//! The listener end to end: a daemon (in process, as `scansync run` runs it) against the
//! simulator, with `[server]` on a loopback port. Pushes from each platform, signed here
//! with the scan's secret as the platform would, start runs on their branch; tampered,
//! replayed, foreign-branch, oversized and non-push deliveries start nothing; `/readyz`
//! follows the store; HTTPS and the metrics token work; `/metrics`, read with a Prometheus
//! text-format parser, moves by what a run did. Runs are counted in the store.

mod common;

use common::hooks::*;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use prometheus_parse::Scrape;
use rusqlite::Connection;
use scansync::sim::Simulator;
use serde_json::Value;
use sha2::Sha256;
use std::path::Path;
use std::time::{Duration, Instant};

fn on_branch(payload: &str, from: &str, to: &str) -> String {
    assert!(payload.contains(from), "fixture lacks {from}");
    payload.replace(from, to)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_push_starts_a_run_on_its_branch_and_nothing_else_does() {
    let sim = sim(0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let scans = format!(
        "{}[[scans]]\nname = \"plain\"\ninstance = \"sim-salt\"\nbind_to = \"project-1\"\nschedule = {{ at = \"2099-01-01T00:00:00Z\" }}\n",
        hook_scan(dir.path(), "gh", "github", GITHUB_SECRET)
    );
    let (config, store) = write_config(&sim, dir.path(), "", "", &scans);
    let mut d = start(&config).await;
    d.ready().await;
    let hook = d.url("/hooks/gh");
    let push = on_branch(
        &fixture("github_push.json"),
        "\"ref\": \"refs/heads/main\"",
        "\"ref\": \"refs/heads/release/1.2\"",
    );

    let r = post(&hook, &github_headers("push", "d-1", &push), push.clone()).await;
    assert_eq!(r.status, 202, "{}", r.json);
    assert_eq!(r.json["result"], "started", "{}", r.json);
    assert_eq!(r.json["branch"], "release/1.2");
    let run_id = r.json["run_id"].as_i64().expect("a run id");
    let (scan, branch, trigger, state) = finished_run(&store, run_id).await;
    assert_eq!(
        scan, "gh@release/1.2",
        "another branch keeps its own lifecycle"
    );
    assert_eq!(branch.as_deref(), Some("release/1.2"));
    assert_eq!(trigger, "webhook");
    assert_eq!(state, "succeeded");

    // One byte changed after signing: refused.
    let headers = github_headers("push", "d-2", &push);
    let tampered = push.replacen("release/1.2", "release/1.3", 1);
    assert_eq!(push.len(), tampered.len());
    let r = post(&hook, &headers, tampered).await;
    assert_eq!(r.status, 401, "{}", r.json);

    // The same delivery again: recognised, nothing started.
    let r = post(&hook, &github_headers("push", "d-1", &push), push.clone()).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["result"], "duplicate");
    assert_eq!(r.json["run_id"].as_i64(), Some(run_id));
    // Replayed by someone who captured it, under a delivery id of their own (the header is
    // not signed): the same push, nothing started.
    let r = post(
        &hook,
        &github_headers("push", "forged-9", &push),
        push.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["result"], "duplicate", "{}", r.json);
    assert_eq!(r.json["run_id"].as_i64(), Some(run_id));
    // And without one: GitHub always sends it, so its absence is refused.
    let mut bare = github_headers("push", "x", &push);
    bare.retain(|(name, _)| *name != "X-GitHub-Delivery");
    let r = post(&hook, &bare, push.clone()).await;
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(
        r.json["error"]
            .as_str()
            .unwrap_or("")
            .contains("X-GitHub-Delivery is missing"),
        "{}",
        r.json
    );

    // A branch outside `branches`, a tag, a ping: 200, nothing started.
    let feature = on_branch(&push, "refs/heads/release/1.2", "refs/heads/feature/login");
    let r = post(&hook, &github_headers("push", "d-3", &feature), feature).await;
    assert_eq!(
        (r.status, r.json["result"].as_str()),
        (200, Some("ignored")),
        "{}",
        r.json
    );
    let tag = on_branch(&push, "refs/heads/release/1.2", "refs/tags/v1.2.0");
    let r = post(&hook, &github_headers("push", "d-4", &tag), tag).await;
    assert_eq!(
        (r.status, r.json["result"].as_str()),
        (200, Some("ignored")),
        "{}",
        r.json
    );
    let ping = fixture("github_ping.json");
    let r = post(&hook, &github_headers("ping", "d-5", &ping), ping).await;
    assert_eq!(
        (r.status, r.json["result"].as_str()),
        (200, Some("ignored")),
        "{}",
        r.json
    );

    // No signature; a body that is not a push payload (signed); unknown scan; no webhook.
    let r = post(&hook, &[("X-GitHub-Event", "push".into())], push.clone()).await;
    assert_eq!(r.status, 401);
    let junk = "{\"zen\": \"not a push\"}".to_string();
    let r = post(&hook, &github_headers("push", "d-6", &junk), junk).await;
    assert_eq!(r.status, 400, "{}", r.json);
    let r = post(
        &d.url("/hooks/nope"),
        &github_headers("push", "d-7", &push),
        push.clone(),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = post(
        &d.url("/hooks/plain"),
        &github_headers("push", "d-8", &push),
        push.clone(),
    )
    .await;
    assert_eq!(r.status, 404);

    // 2 MiB, correctly signed: too large, refused before anything else.
    let big = format!(
        "{{\"ref\": \"refs/heads/main\", \"pad\": \"{}\"}}",
        "x".repeat(2 << 20)
    );
    let r = post(&hook, &github_headers("push", "d-9", &big), big).await;
    assert_eq!(r.status, 413, "{}", r.json);

    // After all of that, still the one run.
    let runs = webhook_runs(&store);
    assert_eq!(runs.len(), 1, "{runs:?}");
    d.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_push_with_a_secret_token_or_a_signing_token_starts_a_run() {
    let sim = sim(0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let scans = hook_scan(dir.path(), "gl", "gitlab", GITLAB_SECRET);
    let (config, store) = write_config(&sim, dir.path(), "", "", &scans);
    let mut d = start(&config).await;
    d.ready().await;
    let hook = d.url("/hooks/gl");
    let push = fixture("gitlab_push.json");
    let token_headers = |key: &str| {
        vec![
            ("X-Gitlab-Event", "Push Hook".to_string()),
            ("X-Gitlab-Token", GITLAB_SECRET.to_string()),
            ("Idempotency-Key", key.to_string()),
            ("User-Agent", "GitLab/18.2.0".to_string()),
        ]
    };

    // The plain secret token: the header equals the secret.
    let r = post(&hook, &token_headers("k-1"), push.clone()).await;
    assert_eq!(r.status, 202, "{}", r.json);
    let first = r.json["run_id"].as_i64().unwrap();
    let (scan, branch, _, state) = finished_run(&store, first).await;
    assert_eq!((scan.as_str(), branch.as_deref()), ("gl", Some("main")));
    assert_eq!(state, "succeeded");
    let mut wrong = token_headers("k-2");
    wrong[1].1 = "whsec_bm90LXRoZS1zZWNyZXQ=".to_string();
    assert_eq!(post(&hook, &wrong, push.clone()).await.status, 401);
    let r = post(&hook, &token_headers("k-1"), push.clone()).await;
    assert_eq!(r.json["result"], "duplicate", "{}", r.json);

    // The signing token (Standard Webhooks): HMAC of "id.timestamp.body" with the decoded key.
    let release = on_branch(
        &push,
        "\"ref\": \"refs/heads/main\"",
        "\"ref\": \"refs/heads/release/2026.05\"",
    );
    let id = "msg_2xK9v1";
    let ts = chrono::Utc::now().timestamp().to_string();
    let key = base64::engine::general_purpose::STANDARD
        .decode(GITLAB_SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{release}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let signed = vec![
        ("X-Gitlab-Event", "Push Hook".to_string()),
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", ts.clone()),
        ("webhook-signature", format!("v1,{sig}")),
        ("Idempotency-Key", id.to_string()),
    ];
    let mut tampered = release.clone().into_bytes();
    tampered[10] ^= 0x20;
    assert_eq!(post(&hook, &signed, tampered).await.status, 401);
    let r = post(&hook, &signed, release).await;
    assert_eq!(r.status, 202, "{}", r.json);
    let second = r.json["run_id"].as_i64().unwrap();
    let (scan, branch, trigger, _) = finished_run(&store, second).await;
    assert_eq!(scan, "gl@release/2026.05");
    assert_eq!(branch.as_deref(), Some("release/2026.05"));
    assert_eq!(trigger, "webhook");
    assert_eq!(webhook_runs(&store).len(), 2);
    d.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitbucket_cloud_and_data_center_pushes_start_runs() {
    let sim = sim(0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let scans = hook_scan(dir.path(), "bb", "bitbucket", BITBUCKET_SECRET);
    let (config, store) = write_config(&sim, dir.path(), "", "", &scans);
    let mut d = start(&config).await;
    d.ready().await;
    let hook = d.url("/hooks/bb");
    let sign = |body: &str| {
        format!(
            "sha256={}",
            hex_hmac(BITBUCKET_SECRET.as_bytes(), body.as_bytes())
        )
    };

    let cloud = fixture("bitbucket_cloud_push.json");
    let cloud_headers = vec![
        ("X-Event-Key", "repo:push".to_string()),
        (
            "X-Request-UUID",
            "7b1f3c2e-8d4a-4e6b-9f0a-1c2d3e4f5a6b".to_string(),
        ),
        (
            "X-Hook-UUID",
            "{0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e}".to_string(),
        ),
        ("X-Attempt-Number", "1".to_string()),
        ("X-Hub-Signature", sign(&cloud)),
        ("User-Agent", "Bitbucket-Webhooks/2.0".to_string()),
    ];
    let mut tampered = cloud.clone().into_bytes();
    let at = cloud.find("709d658d").unwrap();
    tampered[at] = b'8';
    assert_eq!(post(&hook, &cloud_headers, tampered).await.status, 401);
    let r = post(&hook, &cloud_headers, cloud.clone()).await;
    assert_eq!(r.status, 202, "{}", r.json);
    let (scan, branch, _, _) = finished_run(&store, r.json["run_id"].as_i64().unwrap()).await;
    assert_eq!((scan.as_str(), branch.as_deref()), ("bb", Some("main")));
    let r = post(&hook, &cloud_headers, cloud).await;
    assert_eq!(r.json["result"], "duplicate", "{}", r.json);

    let dc = on_branch(
        &on_branch(
            &fixture("bitbucket_dc_refs_changed.json"),
            "\"displayId\": \"main\"",
            "\"displayId\": \"release/7\"",
        ),
        "refs/heads/main",
        "refs/heads/release/7",
    );
    let dc_headers = vec![
        ("X-Event-Key", "repo:refs_changed".to_string()),
        (
            "X-Request-Id",
            "3f0c9a1e-2b7d-4c58-a6e9-0d1b2c3a4f5e".to_string(),
        ),
        ("X-Hub-Signature", sign(&dc)),
    ];
    let mut tampered = dc.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] ^= 1;
    assert_eq!(post(&hook, &dc_headers, tampered).await.status, 401);
    let r = post(&hook, &dc_headers, dc.clone()).await;
    assert_eq!(r.status, 202, "{}", r.json);
    let (scan, branch, _, state) = finished_run(&store, r.json["run_id"].as_i64().unwrap()).await;
    assert_eq!(
        (scan.as_str(), branch.as_deref()),
        ("bb@release/7", Some("release/7"))
    );
    assert_eq!(state, "succeeded");

    // Data Center's "Test connection" button.
    let ping = "{\"test\": true}".to_string();
    let ping_headers = vec![
        ("X-Event-Key", "diagnostics:ping".to_string()),
        ("X-Request-Id", "ping-1".to_string()),
        ("X-Hub-Signature", sign(&ping)),
    ];
    let r = post(&hook, &ping_headers, ping).await;
    assert_eq!(
        (r.status, r.json["result"].as_str()),
        (200, Some("ignored"))
    );
    assert_eq!(webhook_runs(&store).len(), 2);
    d.stop().await;
    sim.shutdown().await;
}

/// The simulator's CodeThreat API behind a proxy that holds every scan status request until
/// the test opens the gate: a vendor scan that ends when the test says so, whatever the
/// machine's speed. Returns the proxy's CodeThreat URL, the gate, and the count of status
/// requests that arrived.
async fn held_scans(
    sim: &Simulator,
) -> (
    String,
    tokio::sync::watch::Sender<bool>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let (base, gate, held) =
        common::proxy(sim, Some("/api/scan/status/"), common::no_rewrite()).await;
    (format!("{base}/codethreat"), gate, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_while_a_run_is_going_queue_exactly_one_more_run() {
    // The vendor scan is held at its first status poll until the pushes below are in, so
    // they arrive while the first run is going however slow the machine is.
    let sim = sim(0.0).await;
    let (proxy_url, gate, status_requests) = held_scans(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let scans = hook_scan(dir.path(), "gh", "github", GITHUB_SECRET);
    let (config, store) = write_config(&sim, dir.path(), "", "", &scans);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&sim.codethreat_url()));
    std::fs::write(&config, text.replace(&sim.codethreat_url(), &proxy_url)).unwrap();
    let mut d = start(&config).await;
    d.ready().await;
    let hook = d.url("/hooks/gh");
    let push = fixture("github_push.json");
    let mut ids = Vec::new();
    let mut results = Vec::new();
    for n in 0..4 {
        // Four pushes of four commits (one push replayed would be recognised as such).
        let push = push.replace(
            "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
            &format!("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1{n}"),
        );
        let r = post(
            &hook,
            &github_headers("push", &format!("q-{n}"), &push),
            push.clone(),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.json);
        ids.push(r.json["run_id"].as_i64().unwrap());
        results.push(r.json["result"].as_str().unwrap().to_string());
    }
    assert_eq!(results, ["started", "queued", "queued", "queued"]);
    assert_ne!(ids[0], ids[1]);
    assert_eq!(
        ids[1..],
        [ids[1]; 3],
        "later pushes join the one waiting run"
    );
    // Nothing finished while the scan was held; then release it.
    assert!(webhook_runs(&store).iter().all(|r| r.4 == "running"));
    gate.send(true).unwrap();
    for id in [ids[0], ids[1]] {
        assert_eq!(finished_run(&store, id).await.3, "succeeded");
    }
    assert!(status_requests.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    assert_eq!(sim.codethreat_scans().len(), 2, "one vendor scan per run");
    let runs = webhook_runs(&store);
    assert_eq!(runs.len(), 2, "{runs:?}");
    d.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_until_the_store_is_open_then_200() {
    let sim = sim(0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let scans = hook_scan(dir.path(), "gh", "github", GITHUB_SECRET);
    let (config, store) = write_config(&sim, dir.path(), "", "", &scans);
    // Another process (here: this test) holds the store's write lock, as a backup would.
    drop(scansync::store::Store::open(&store).unwrap());
    let lock = Connection::open(&store).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();

    let d = start(&config).await;
    let client = reqwest::Client::new();
    let health = client.get(d.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let ready = client.get(d.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], false, "{body}");
    let push = fixture("github_push.json");
    let r = post(
        &d.url("/hooks/gh"),
        &github_headers("push", "early", &push),
        push.clone(),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.json);

    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    let start = Instant::now();
    let body = loop {
        let resp = client.get(d.url("/readyz")).send().await.unwrap();
        if resp.status().as_u16() == 200 {
            break resp.json::<Value>().await.unwrap();
        }
        assert!(start.elapsed() < WAIT, "/readyz never became 200");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["store"], "writable");
    assert_eq!(body["scheduler"], "running");
    // Asking wrote nothing: a probe is a read.
    let probes: i64 = Connection::open(&store)
        .unwrap()
        .query_row("SELECT count(*) FROM readiness_probe", [], |r| r.get(0))
        .unwrap();
    assert_eq!(probes, 0, "/readyz wrote to the store");
    assert!(
        body["scans"]["gh"]["last_success_age_seconds"].is_null(),
        "no run yet: {body}"
    );
    // A run later, the age is a number.
    let r = post(
        &d.url("/hooks/gh"),
        &github_headers("push", "later", &push),
        push,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.json);
    finished_run(&store, r.json["run_id"].as_i64().unwrap()).await;
    let body: Value = client
        .get(d.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        body["scans"]["gh"]["last_success_age_seconds"].is_u64(),
        "{body}"
    );
    d.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_speaks_https_with_the_configured_certificate() {
    let sim = sim(0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let tls = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let extra = format!(
        "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        tls.join("server.pem").display(),
        tls.join("server.key").display()
    );
    let (config, _) = write_config(&sim, dir.path(), "", &extra, "");
    let mut d = start(&config).await;
    d.ready().await;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(tls.join("ca.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let url = format!("https://{}/readyz", d.addr);
    let resp = client
        .get(&url)
        .send()
        .await
        .expect("HTTPS with the test CA");
    assert_eq!(resp.status().as_u16(), 200);
    // Without the CA the certificate is not trusted; plain HTTP gets no answer.
    assert!(reqwest::Client::new().get(&url).send().await.is_err());
    assert!(reqwest::Client::new()
        .get(d.url("/healthz"))
        .send()
        .await
        .is_err());
    d.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_require_the_bearer_token_when_one_is_set() {
    let sim = sim(0.0).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("metrics-token"), "scrape-token-3b9d\n").unwrap();
    let (config, _) = write_config(
        &sim,
        dir.path(),
        "",
        "metrics_token_file = \"metrics-token\"\n",
        "",
    );
    let mut d = start(&config).await;
    d.ready().await;
    let client = reqwest::Client::new();
    let url = d.url("/metrics");
    let none = client.get(&url).send().await.unwrap();
    assert_eq!(none.status().as_u16(), 401);
    assert!(none.headers().contains_key("www-authenticate"));
    let wrong = client
        .get(&url)
        .bearer_auth("scrape-token-3b9")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let right = client
        .get(&url)
        .bearer_auth("scrape-token-3b9d")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status().as_u16(), 200);
    assert_eq!(
        right.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    // Health needs no token.
    assert_eq!(
        client
            .get(d.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    d.stop().await;
    sim.shutdown().await;
}

/// `GET /metrics`: 200 with the content type Prometheus expects, parsed; the text too.
async fn scrape(url: &str) -> (String, Scrape) {
    let resp = reqwest::Client::new().get(url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    let parsed = common::parse_exposition(&text);
    (text, parsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_over_http_move_by_what_a_run_did_and_findings_match_the_store() {
    let sim = sim(0.0).await;
    let dir = tempfile::tempdir().unwrap();
    // A scan and an instance of this test's own: the registry is shared by every test here.
    let scans = hook_scan(dir.path(), "mh", "github", GITHUB_SECRET);
    let (config, store) = write_config(&sim, dir.path(), "", "", &scans);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("sim-codethreat", "mh-ct")).unwrap();
    let mut d = start(&config).await;
    d.ready().await;
    let metrics = d.url("/metrics");
    let runs_ok = [("scan", "mh"), ("outcome", "succeeded")];
    let requests_ok = [("instance", "mh-ct"), ("status_class", "2xx")];

    let (before_text, before) = scrape(&metrics).await;
    common::promtool_check(&before_text);
    assert_eq!(
        common::counter(&before, "scansync_runs_total", &runs_ok),
        0.0
    );
    assert_eq!(
        common::counter(&before, "scansync_vendor_requests_total", &requests_ok),
        0.0
    );

    let push = fixture("github_push.json");
    let r = post(
        &d.url("/hooks/mh"),
        &github_headers("push", "metrics-1", &push),
        push,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.json);
    let run = finished_run(&store, r.json["run_id"].as_i64().unwrap()).await;
    assert_eq!(run.3, "succeeded");

    let (text, after) = scrape(&metrics).await;
    common::promtool_check(&text);
    assert_eq!(
        common::counter(&after, "scansync_runs_total", &runs_ok),
        1.0,
        "{text}"
    );
    // Every request the simulator saw came from this daemon's one instance, all 2xx.
    let served = sim.requests().len() as f64;
    assert!(served > 0.0);
    assert_eq!(
        common::counter(&after, "scansync_vendor_requests_total", &requests_ok),
        served,
        "{text}"
    );

    // The findings gauge is the store's own count, zeros included.
    let db = db(&store);
    let mut stmt = db
        .prepare(
            "SELECT f.state, f.severity, count(*) FROM findings f \
             JOIN scans s ON s.id = f.scan_id WHERE s.name = 'mh' GROUP BY 1, 2",
        )
        .unwrap();
    let stored: std::collections::BTreeMap<(String, String), f64> = stmt
        .query_map([], |r| {
            Ok(((r.get(0)?, r.get(1)?), r.get::<_, i64>(2)? as f64))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        stored.values().sum::<f64>() > 0.0,
        "the run stored findings"
    );
    for state in [
        "new",
        "open",
        "fixed",
        "reopened",
        "false_positive",
        "accepted",
    ] {
        for severity in ["critical", "high", "medium", "low", "info"] {
            let labels = [("scan", "mh"), ("state", state), ("severity", severity)];
            let key = (state.to_string(), severity.to_string());
            assert_eq!(
                common::gauge(&after, "scansync_findings", &labels),
                Some(stored.get(&key).copied().unwrap_or(0.0)),
                "{labels:?}"
            );
        }
    }
    d.stop().await;
    sim.shutdown().await;
}

#[test]
fn webhook_secret_prints_a_new_url_safe_secret_each_time() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_scansync"))
            .arg("webhook-secret")
            .args(args)
            .env_remove("SCANSYNC_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
    };
    let (a, b) = (run(&[]), run(&[]));
    assert_ne!(a, b);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&a)
        .expect("URL-safe base64 without padding");
    assert_eq!(bytes.len(), 32);
    let token = run(&["--signing-token"]);
    let key = base64::engine::general_purpose::STANDARD
        .decode(token.strip_prefix("whsec_").expect("whsec_ prefix"))
        .unwrap();
    assert_eq!(key.len(), 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_the_listener_serves_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = sim(0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let scans = hook_scan(dir.path(), "gh", "github", GITHUB_SECRET);
    let (config, _store) = write_config(&sim, dir.path(), "", "max_connections = 3\n", &scans);
    let mut d = start(&config).await;
    d.ready().await;
    // Three connections that send nothing hold the three places.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(d.addr).await.unwrap());
    }
    // A flood past the cap: each one is closed without an answer, none crashes anything.
    // (The idle ones are accepted first: the listener takes connections in order.)
    for _ in 0..50 {
        let mut extra = tokio::net::TcpStream::connect(d.addr).await.unwrap();
        let _ = extra
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await;
        let mut answer = Vec::new();
        let read = tokio::time::timeout(WAIT, extra.read_to_end(&mut answer)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "a connection past the cap got an answer: {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    // A place frees: the listener serves again.
    drop(idle.pop());
    let healthz = d.url("/healthz");
    let mut served = false;
    for _ in 0..50 {
        if let Ok(r) = reqwest::get(&healthz).await {
            served = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the listener serves once a place is free");
    d.stop().await;
    sim.shutdown().await;
}
