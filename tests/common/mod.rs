//! Helpers shared by integration tests: a loopback TLS server for the certificate checks,
//! reading Prometheus' text format back (a parser, typed look-ups, `promtool`), and what a
//! check does when the external tool it needs is missing ([`tool_missing`]), and a loopback
//! proxy in front of the simulator that holds or rewrites answers ([`proxy`]).
//!
//! Each test crate that says `mod common;` uses a part of this file; the rest would be dead
//! code there.
#![allow(dead_code)]

pub mod pg;

pub mod hooks;

use prometheus_parse::{LineInfo, Scrape, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A loopback HTTPS server with a certificate from the test CA in tests/fixtures/tls; it
/// answers every request with a CodeThreat-like JSON 200 naming `organization`.
pub async fn tls_server(organization: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(include_bytes!("../fixtures/tls/server.pem"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("../fixtures/tls/server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to serve.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = format!(r#"{{"name": "{organization}"}}"#);
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://127.0.0.1:{port}")
}

/// Parses an exposition with a Prometheus text-format parser, refusing any line it does not
/// recognize as help, type or sample, and any sample of a family without a `# TYPE` line.
pub fn parse_exposition(text: &str) -> Scrape {
    let mut typed = Vec::new();
    for line in text.lines() {
        match LineInfo::parse(line) {
            LineInfo::Doc { .. } => {}
            LineInfo::Type { metric_name, .. } => {
                typed.push(metric_name.trim_end_matches("_bucket").to_string())
            }
            LineInfo::Sample { metric_name, .. } => assert!(
                typed.iter().any(|t| metric_name.starts_with(t.as_str())),
                "sample without a # TYPE line: {line}"
            ),
            LineInfo::Empty | LineInfo::Ignored => panic!("unrecognized line {line:?}"),
        }
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses")
}

/// The value of the sample of `metric` whose labels are exactly `labels`.
pub fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| {
            // `node` (this daemon's name, on every series) is not one of the labels asked for.
            let node = usize::from(s.labels.get("node").is_some());
            s.labels.len() == labels.len() + node
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
        })
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{metric} is not a single value: {other:?}"),
        })
        .collect();
    assert!(matching.len() <= 1, "duplicate series {metric} {labels:?}");
    matching.first().copied()
}

/// Like [`value`] (0 for a series not there yet), also checking the family is a counter.
pub fn counter(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    if let Some(s) = scrape.samples.iter().find(|s| s.metric == metric) {
        assert!(
            matches!(s.value, Value::Counter(_)),
            "{metric} must be typed counter: {s:?}"
        );
    }
    value(scrape, metric, labels).unwrap_or(0.0)
}

/// Like [`value`], also checking the family is a gauge.
pub fn gauge(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    if let Some(s) = scrape.samples.iter().find(|s| s.metric == metric) {
        assert!(
            matches!(s.value, Value::Gauge(_)),
            "{metric} must be typed gauge: {s:?}"
        );
    }
    value(scrape, metric, labels)
}

/// Whether a check whose external tool is missing must fail rather than skip: under CI
/// (`CI=true`, as CI services set it) or with `SCANSYNC_REQUIRE_TOOLS=1` (`.ci/run` exports
/// it after installing every tool).
pub fn tools_required() -> bool {
    let set = |name: &str, want: &[&str]| {
        std::env::var(name)
            .map(|v| want.iter().any(|w| v.eq_ignore_ascii_case(w)))
            .unwrap_or(false)
    };
    set("CI", &["true", "1"]) || set("SCANSYNC_REQUIRE_TOOLS", &["1", "true"])
}

/// The check `check` cannot run because `why` (a tool is missing). Under CI
/// ([`tools_required`]) this fails the test. Elsewhere it says "SKIPPED" on the process's
/// stderr itself: libtest captures `print!`/`eprint!` of a passing test and shows nothing,
/// but not a direct write to the stream, so the skip shows in `cargo test`'s output.
pub fn tool_missing(check: &str, why: &str) {
    if tools_required() {
        panic!(
            "{check}: {why}. CI=true or SCANSYNC_REQUIRE_TOOLS=1 is set, so a missing tool \
             fails the test (.ci/run installs every tool the tests need)"
        );
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {check}: {why}");
}

/// `promtool check metrics` on `text` (Debian package `prometheus`; `.ci/run` installs it).
/// Where promtool is missing: [`tool_missing`] (a failure under CI, a visible skip elsewhere).
pub fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            tool_missing(
                "promtool check metrics",
                &format!("cannot run promtool ({e}); install the Debian package `prometheus`"),
            );
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- the text ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A response as the proxy may rewrite it.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

pub type Rewrite = Arc<dyn Fn(&str, &mut Answer) + Send + Sync>;

/// A loopback proxy in front of the simulator: every request is forwarded; requests whose
/// path and query contain `hold` (when given) are counted and held until the gate opens
/// (while the gate is kept closed, never answered); `rewrite` may change any answer (path
/// and query given). Returns the proxy's base URL (`http://addr`), the gate, and the count
/// of held requests that arrived.
pub async fn proxy(
    sim: &scansync::sim::Simulator,
    hold: Option<&'static str>,
    rewrite: Rewrite,
) -> (String, tokio::sync::watch::Sender<bool>, Arc<AtomicUsize>) {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    let (gate, open) = tokio::sync::watch::channel(hold.is_none());
    let held = Arc::new(AtomicUsize::new(0));
    let upstream: SocketAddr = sim.addr();
    let client = reqwest::Client::new();
    let counter = held.clone();
    let app = axum::Router::new().fallback(move |req: Request| {
        let (client, mut open, counter, rewrite) = (
            client.clone(),
            open.clone(),
            counter.clone(),
            rewrite.clone(),
        );
        async move {
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            if hold.is_some_and(|h| path.contains(h)) {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = open.wait_for(|o| *o).await;
            }
            let method = req.method().clone();
            let headers = req.headers().clone();
            let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .unwrap();
            let mut forward = client.request(method, format!("http://{upstream}{path}"));
            for (name, value) in &headers {
                if name != "host" && name != "content-length" {
                    forward = forward.header(name, value);
                }
            }
            let answer = forward.body(body).send().await.unwrap();
            let mut a = Answer {
                status: answer.status().as_u16(),
                headers: answer
                    .headers()
                    .iter()
                    .filter(|(n, _)| {
                        !matches!(
                            n.as_str(),
                            "content-length" | "transfer-encoding" | "connection"
                        )
                    })
                    .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                    .collect(),
                body: answer.bytes().await.unwrap().to_vec(),
            };
            rewrite(&path, &mut a);
            let mut out = Response::builder().status(a.status);
            for (n, v) in &a.headers {
                out = out.header(n.as_str(), v.as_slice());
            }
            out.body(Body::from(a.body)).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), gate, held)
}

pub fn no_rewrite() -> Rewrite {
    Arc::new(|_, _| {})
}

/// A finished command's exit status and output, for assertion messages.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
