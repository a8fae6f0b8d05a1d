//! What the one-shot commands print for a person: vendor text arrives escaped (a finding
//! title cannot drive the operator's terminal), wide titles stay aligned, and output into a
//! pipe carries no terminal control sequence (no progress line, no colour).

mod common;

use scansync::finding::{Finding, Location, Severity};
use scansync::store::{RunEnd, RunScope, Store};
use std::process::Command;

fn finding(title: &str, path: &str) -> Finding {
    Finding {
        vendor_id: None,
        title: title.into(),
        severity: Severity::High,
        vendor_status: Some("Open".into()),
        cwe: None,
        owasp: None,
        rule_id: Some(format!("rule-{path}")),
        location: Location::Code {
            path: path.into(),
            start_line: Some(1),
            end_line: None,
        },
        description: None,
        remediation: None,
        vendor_url: None,
        vendor_first_seen: None,
        vendor_last_seen: None,
        raw: "{}".into(),
        verdict: None,
    }
}

#[test]
fn findings_table_escapes_control_characters_and_aligns_wide_titles() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("scansync.db");
    {
        let mut store = Store::open(&db).unwrap();
        let run = store
            .begin_run(&RunScope {
                scan: "shop".into(),
                instance: "ct".into(),
                vendor: "codethreat".into(),
                bind_to: "shop-web".into(),
                branch: None,
                trigger: "cli".into(),
                ..RunScope::default()
            })
            .unwrap();
        store
            .upsert_page(
                run,
                &[
                    // Clear screen, set the window title, ring the bell, then a newline.
                    finding(
                        "evil\u{1b}[2J\u{1b}]0;owned\u{7}\ntitle",
                        "src/a.js\u{1b}[31m",
                    ),
                    finding("漢字のタイトル", "src/b.js"),
                ],
            )
            .unwrap();
        store.finish_run(run, RunEnd::Succeeded).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_scansync"))
        .args(["findings", "--store"])
        .arg(&db)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    for text in [&stdout, &stderr] {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "a control character reached the terminal: {text:?}"
        );
    }
    assert!(
        stdout.contains("evil\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\ntitle"),
        "{stdout}"
    );
    assert!(stdout.contains("src/a.js\\u{1b}[31m:1"), "{stdout}");
    // Header plus one line per finding: the newline in the title did not split its row.
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    // The column after the title starts at the same terminal column on every row.
    let lines: Vec<&str> = stdout.lines().collect();
    let title_start = lines[0].find("TITLE").expect("a TITLE column");
    let next_col = |line: &str| {
        let rest = &line[title_start..];
        let cut = rest.find("  ").unwrap();
        let gap = rest[cut..].len() - rest[cut..].trim_start().len();
        unicode_width::UnicodeWidthStr::width(&line[..title_start + cut + gap])
    };
    let first = next_col(lines[0]);
    for line in &lines[1..] {
        assert_eq!(next_col(line), first, "misaligned:\n{stdout}");
    }
}

#[test]
fn check_config_into_a_pipe_prints_no_escape_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[store]\npath = \"x.db\"\n[instances.ct]\nvendor = \"codethreat\"\nurl = \"https://ct.example\"\norganization = \"a\"\ntoken_env = \"SCANSYNC_TEST_TOKEN\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scansync"))
        .args(["check-config", "--config"])
        .arg(&config)
        .env("SCANSYNC_TEST_TOKEN", "t")
        .env("TERM", "xterm-256color")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let all = [out.stdout, out.stderr].concat();
    assert!(!all.contains(&0x1b), "{}", String::from_utf8_lossy(&all));
}

/// `scansync sync` against the simulator with stderr on a pseudo-terminal (util-linux
/// `script`), `TERM` as given; returns the exit code and everything the terminal received.
fn sync_on_a_terminal(term: &str) -> Option<(Option<i32>, String)> {
    use scansync::sim::{SimOptions, Simulator};
    if Command::new("script").arg("--version").output().is_err() {
        common::tool_missing(
            "terminal output check",
            "`script` is not on PATH (Debian package bsdutils)",
        );
        return None;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = rt
        .block_on(Simulator::start(SimOptions {
            projects: 2,
            findings_per_project: 50,
            scan_seconds: 0.5,
            ..SimOptions::default()
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    sim.write_config(&config, &dir.path().join("scansync.db"))
        .unwrap();
    // poll_interval 1s: the CodeThreat scan is polled at least once, so status lines show.
    let command = format!(
        "{} --config {} sync",
        env!("CARGO_BIN_EXE_scansync"),
        config.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("TERM", term)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    drop(rt);
    Some((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

#[test]
fn sync_at_a_terminal_logs_warn_only_and_its_report_follows_the_erased_status_lines() {
    let Some((code, text)) = sync_on_a_terminal("xterm-256color") else {
        return;
    };
    assert_eq!(code, Some(0), "{text:?}");
    // No info lines at a terminal by default.
    assert!(!text.contains("INFO"), "{text:?}");
    // Status lines were drawn and erased; the report comes after the last erase, whole.
    let last_erase = text.rfind("\r\x1b[2K").expect("status lines were drawn");
    let report = &text[last_erase + "\r\x1b[2K".len()..];
    assert!(!report.contains('\x1b'), "{report:?}");
    let summaries: Vec<&str> = report
        .lines()
        .filter(|l| l.contains(": succeeded (run "))
        .collect();
    assert_eq!(summaries.len(), 2, "{report:?}");
}

#[test]
fn sync_on_a_dumb_terminal_draws_no_status_lines() {
    let Some((code, text)) = sync_on_a_terminal("dumb") else {
        return;
    };
    assert_eq!(code, Some(0), "{text:?}");
    assert!(!text.contains('\x1b'), "{text:?}");
    assert_eq!(text.matches(": succeeded (run ").count(), 2, "{text:?}");
}

/// A vendor (or whoever sits in front of it) answering every request with an error whose
/// text carries escape sequences: a title change, a screen clear and a bidi override. What
/// `sync`, `scan` and `test-connection` print of it reaches the operator's terminal escaped.
#[test]
fn escape_sequences_in_a_vendors_error_never_reach_the_terminal_raw() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // JSON escapes: the message the client decodes holds ESC, BEL and U+202E.
    let hostile = r#"{"message":"denied \u001b]0;pwned\u0007\u001b[2J\u202egnp.exe"}"#;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || async move {
        (
            axum::http::StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            hostile,
        )
    });
    rt.spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"scansync.db\"\n\n[instances.ct]\nvendor = \"codethreat\"\n\
             url = \"http://{addr}\"\norganization = \"acme\"\ntoken = \"t0k3n-for-the-test\"\n\
             timeout = \"5s\"\n\n[[scans]]\nname = \"web\"\ninstance = \"ct\"\n\
             bind_to = \"project-1\"\nschedule = \"now\"\n"
        ),
    )
    .unwrap();
    let mut shown_escaped = 0;
    for args in [
        &["sync"][..],
        &["scan", "-p", "project-1", "-t", "codethreat"][..],
        &["test-connection"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_scansync"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
        let text = String::from_utf8_lossy(&all);
        assert_ne!(out.status.code(), Some(0), "{args:?}: {text}");
        assert!(
            !all.contains(&0x1b) && !all.contains(&0x07) && !text.contains('\u{202e}'),
            "{args:?} printed a raw control character: {text:?}"
        );
        if text.contains("pwned") {
            shown_escaped += 1;
            assert!(text.contains("\\u{1b}]0;pwned"), "{args:?}: {text}");
        }
    }
    assert!(
        shown_escaped > 0,
        "no command showed the vendor's error text at all: the check proved nothing"
    );
}
