//! `scansync projects INSTANCE` against the in-process simulator: CodeThreat projects across
//! several pages of the (proposed) listing call, Salt Security assets from its inventory,
//! the JSON Lines form, and the errors (unknown instance, rejected token) with their codes.

use scansync::sim::{SimOptions, Simulator};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_scansync");

/// More than one page of CodeThreat's listing (100 per page), so paging is exercised.
const PROJECTS: u32 = 130;

async fn sim() -> Simulator {
    Simulator::start(SimOptions {
        projects: PROJECTS,
        findings_per_project: 5,
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts")
}

fn config(sim: &Simulator, dir: &Path) -> PathBuf {
    let config = dir.join("config.toml");
    sim.write_config(&config, &dir.join("scansync.db")).unwrap();
    config
}

async fn projects(config: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .arg("projects")
        .args(args)
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("scansync projects returns")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn expected_names() -> Vec<String> {
    (1..=PROJECTS).map(|n| format!("project-{n}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codethreat_projects_are_listed_across_pages_as_a_table() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, dir.path());
    let (code, stdout, stderr) = projects(&config, &["sim-codethreat"]).await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "KIND", "URL"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let names: Vec<String> = rows.iter().map(|r| r[0].to_string()).collect();
    assert_eq!(names, expected_names());
    let project_1 = &rows[0];
    assert_eq!(project_1.len(), 3, "{project_1:?}");
    assert!(
        project_1[2].starts_with(&sim.codethreat_url())
            && project_1[2].contains("/projects/project-details/project-1"),
        "{project_1:?}"
    );
    let listing_calls: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/api/projects"))
        .collect();
    assert_eq!(listing_calls.len(), 2, "130 projects are two pages of 100");
    assert!(listing_calls.iter().all(|r| r.auth_valid));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salt_assets_are_listed_from_the_inventory_as_json_lines() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, dir.path());
    let (code, stdout, stderr) = projects(&config, &["sim-salt", "--format", "json"]).await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let records: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    let mut names: Vec<String> = records
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    names.sort_by_key(|n| n.trim_start_matches("project-").parse::<u32>().unwrap());
    assert_eq!(names, expected_names());
    for r in &records {
        assert_eq!(r["instance"], "sim-salt");
        assert_eq!(r["vendor"], "saltsecurity");
        assert_eq!(r["kind"], "hostname");
        assert_eq!(r["url"], Value::Null);
    }
    assert!(sim
        .requests()
        .iter()
        .any(|r| r.path.ends_with("/v1/inventory/endpoints")));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codethreat_json_lines_carry_name_kind_and_link() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, dir.path());
    let (code, stdout, stderr) = projects(&config, &["sim-codethreat", "--format", "json"]).await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let first: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["instance"], "sim-codethreat");
    assert_eq!(first["vendor"], "codethreat");
    assert_eq!(first["name"], "project-1");
    assert!(first["kind"].is_string(), "{first}");
    assert!(
        first["url"].as_str().unwrap().contains("project-1"),
        "{first}"
    );
    assert_eq!(stdout.lines().count(), PROJECTS as usize);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_instance_is_an_error_naming_the_known_ones() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, dir.path());
    let (code, stdout, stderr) = projects(&config, &["nope"]).await;
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("no instance named \"nope\"")
            && stderr.contains("sim-codethreat, sim-salt"),
        "{stderr}"
    );
    assert!(sim.requests().is_empty(), "nothing was asked of any vendor");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_token_exits_2_like_test_connection_for_both_vendors() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, dir.path());
    // The simulator's config keeps the token in `<config file name>.token` beside it.
    let mut token_file = config.file_name().unwrap().to_os_string();
    token_file.push(".token");
    std::fs::write(config.with_file_name(token_file), "wrong-token\n").unwrap();
    for instance in ["sim-codethreat", "sim-salt"] {
        let (code, stdout, stderr) = projects(&config, &[instance]).await;
        assert_eq!(code, 2, "{instance}: stdout: {stdout}\nstderr: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(stderr.contains("rejected the token"), "{stderr}");
        assert!(
            !stderr.contains("wrong-token"),
            "the token is never shown: {stderr}"
        );
    }
    sim.shutdown().await;
}
