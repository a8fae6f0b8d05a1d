//! The shipped unit file: systemd accepts it, and its hardening keeps the exposure that
//! `systemd-analyze security` reports at 2.0 or less.
//!
//! Needs `systemd-analyze` (Debian/Ubuntu package `systemd`). Without it the tests say
//! SKIPPED on stderr and pass, except under CI (`CI=true` or `SCANSYNC_REQUIRE_TOOLS=1`),
//! where they fail; `.ci/run` installs the package.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT: &str = include_str!("../systemd/scansync.service");

fn systemd_analyze() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("systemd-analyze"))
        .find(|p| p.is_file())
}

/// The unit as shipped, with ExecStart pointed at the binary this build made (verify wants
/// an existing executable), in a fresh folder under the name systemd would give it.
fn unit_in_temp_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = env!("CARGO_BIN_EXE_scansync");
    let text = UNIT.replace("/usr/bin/scansync", bin);
    assert_ne!(text, UNIT, "ExecStart no longer names /usr/bin/scansync");
    let path = dir.path().join("scansync.service");
    std::fs::write(&path, text).expect("write unit");
    (dir, path)
}

fn run(tool: &Path, args: &[&str], cwd: &Path) -> (bool, String) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(cwd)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .expect("run systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The number after "Overall exposure level for …:".
fn overall_exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))?;
    line.rsplit_once(':')?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn unit_declares_notify_reload_state_directory_and_credentials() {
    for needle in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=scansync",
        "DynamicUser=yes",
        "LoadCredential=",
        "WatchdogSec=",
    ] {
        assert!(UNIT.contains(needle), "unit lacks {needle}");
    }
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let Some(tool) = systemd_analyze() else {
        common::tool_missing(
            "systemd unit check",
            "systemd-analyze is not on PATH (install the Debian package `systemd`)",
        );
        return;
    };
    let (dir, unit) = unit_in_temp_dir();
    let (ok, text) = run(&tool, &["verify", unit.to_str().unwrap()], dir.path());
    assert!(ok, "systemd-analyze verify failed:\n{text}");
    assert!(
        !text.contains("scansync.service:"),
        "systemd-analyze verify complained about the unit:\n{text}"
    );
}

#[test]
fn unit_exposure_is_at_most_two() {
    let Some(tool) = systemd_analyze() else {
        common::tool_missing(
            "systemd unit check",
            "systemd-analyze is not on PATH (install the Debian package `systemd`)",
        );
        return;
    };
    let (dir, unit) = unit_in_temp_dir();
    let (_, text) = run(
        &tool,
        &["security", "--offline=yes", unit.to_str().unwrap()],
        dir.path(),
    );
    let exposure = overall_exposure(&text)
        .unwrap_or_else(|| panic!("no overall exposure in the report:\n{text}"));
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0:\n{text}");
}

#[test]
fn exposure_is_read_from_the_summary_line() {
    let report = "✓ UMask= ...\n\n→ Overall exposure level for scansync.service: 1.2 OK 🙂\n";
    assert_eq!(overall_exposure(report), Some(1.2));
    assert_eq!(overall_exposure("nothing here"), None);
}
