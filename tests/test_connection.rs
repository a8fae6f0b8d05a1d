//! `scansync test-connection` through the real binary: each failure cause has its own exit
//! code and a line that names the cause, produced by the simulator or a real loopback socket.

mod common;

use scansync::sim::{SimOptions, Simulator};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TOKEN: &str = "tok-conn-5d2a-SECRET";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn simulator(rt: &tokio::runtime::Runtime) -> Simulator {
    rt.block_on(Simulator::start(SimOptions {
        token: TOKEN.to_string(),
        projects: 1,
        findings_per_project: 10,
        ..SimOptions::default()
    }))
    .expect("simulator starts")
}

/// Writes a config with one CodeThreat instance `ct` and returns its path.
fn config(dir: &Path, url: &str, organization: &str, token: &str, extra: &str) -> PathBuf {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let text = format!(
        "[store]\npath = {store}\n\n[instances.ct]\nvendor = \"codethreat\"\nurl = {url}\n\
         organization = {org}\ntoken = {token}\ntimeout = \"10s\"\n{extra}\n",
        store = q(&dir.join("scansync.db").to_string_lossy()),
        url = q(url),
        org = q(organization),
        token = q(token),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn test_connection(config: &Path) -> (Option<i32>, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_scansync"))
        .arg("--config")
        .arg(config)
        .arg("test-connection")
        .env_remove("RUST_LOG")
        .output()
        .expect("scansync runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains(TOKEN), "the token leaked: {all}");
    (out.status.code(), stdout)
}

/// The one line printed for instance `ct`.
fn line(stdout: &str) -> String {
    stdout
        .lines()
        .find(|l| l.contains(" ct "))
        .unwrap_or_else(|| panic!("no line for instance ct in:\n{stdout}"))
        .to_string()
}

#[test]
fn reachable_instance_with_the_right_token_exits_0() {
    let rt = runtime();
    let sim = simulator(&rt);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &sim.codethreat_url(), "sim-org", TOKEN, "");
    let (code, out) = test_connection(&cfg);
    assert_eq!(code, Some(0), "{out}");
    assert!(line(&out).starts_with("ok"), "{out}");
}

#[test]
fn rejected_token_exits_2_and_says_token() {
    let rt = runtime();
    let sim = simulator(&rt);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &sim.codethreat_url(), "sim-org", "wrong", "");
    let (code, out) = test_connection(&cfg);
    assert_eq!(code, Some(2), "{out}");
    let l = line(&out);
    assert!(l.starts_with("FAIL"), "{l}");
    assert!(l.to_lowercase().contains("token"), "{l}");
}

#[test]
fn unknown_organization_exits_3_and_says_organization() {
    let rt = runtime();
    let sim = simulator(&rt);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &sim.codethreat_url(), "not-our-org", TOKEN, "");
    let (code, out) = test_connection(&cfg);
    assert_eq!(code, Some(3), "{out}");
    let l = line(&out);
    assert!(l.starts_with("FAIL"), "{l}");
    assert!(l.to_lowercase().contains("organization"), "{l}");
}

#[test]
fn url_without_the_api_exits_4_and_says_url() {
    let rt = runtime();
    let sim = simulator(&rt);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}/nothing-here", sim.addr());
    let cfg = config(dir.path(), &url, "sim-org", TOKEN, "");
    let (code, out) = test_connection(&cfg);
    assert_eq!(code, Some(4), "{out}");
    let l = line(&out);
    assert!(l.starts_with("FAIL"), "{l}");
    assert!(l.to_lowercase().contains("url"), "{l}");
}

#[test]
fn certificate_from_an_unknown_ca_exits_5_and_names_ca_file() {
    let rt = runtime();
    let url = rt.block_on(common::tls_server("sim-org"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &url, "sim-org", TOKEN, "");
    let (code, out) = test_connection(&cfg);
    assert_eq!(code, Some(5), "{out}");
    let l = line(&out);
    assert!(l.starts_with("FAIL"), "{l}");
    assert!(l.contains("ca_file"), "the hint names the fix: {l}");
}

#[test]
fn ca_file_naming_the_private_ca_gets_past_tls() {
    let rt = runtime();
    let url = rt.block_on(common::tls_server("sim-org"));
    let dir = tempfile::tempdir().unwrap();
    let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls/ca.pem");
    let extra = format!(
        "ca_file = {}",
        toml::Value::String(ca.to_string_lossy().into_owned())
    );
    let cfg = config(dir.path(), &url, "sim-org", TOKEN, &extra);
    let (code, out) = test_connection(&cfg);
    // The server answers every request as CodeThreat's organization endpoint does, naming
    // the configured organization: past TLS, the whole check passes.
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(line(&out), format!("ok   ct  codethreat {url}"));
}

#[test]
fn closed_port_exits_6_and_says_it_cannot_connect() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!("http://127.0.0.1:{port}"),
        "sim-org",
        TOKEN,
        "",
    );
    let (code, out) = test_connection(&cfg);
    assert_eq!(code, Some(6), "{out}");
    let l = line(&out);
    assert!(l.starts_with("FAIL"), "{l}");
    assert!(l.contains("network error"), "{l}");
    assert!(l.contains("reachable"), "the hint says what to check: {l}");
}
