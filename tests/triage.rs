//! Triage end to end: the real binary against the simulator. A person's triage holds through
//! re-syncs, is fixed when the vendor drops the finding and returns when it comes back; an
//! acceptance whose day has passed is open again at the next run; a `[[suppress]]` rule
//! triages at import and lets go when removed; SARIF carries the suppressions; CI thresholds
//! never count triaged findings.

mod common;
mod harness;

use harness::*;
use serde_json::Value;
use std::collections::BTreeSet;

fn ok(out: &std::process::Output) -> String {
    assert_exit(out, 0);
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn db(h: &Harness) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        h.store_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

/// `findings --format json` of one scan.
fn findings(h: &Harness, scan: &str) -> Vec<Value> {
    ok(&h.scansync(&["findings", "--format", "json", "--scan", scan]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `finding KEY --format json`.
fn finding(h: &Harness, key: &str) -> Value {
    serde_json::from_str(&ok(&h.scansync(&["finding", key, "--format", "json"]))).unwrap()
}

fn kinds(detail: &Value) -> Vec<String> {
    detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

/// The store id and fingerprint of a scan's finding with this vendor id.
fn by_vendor_id(h: &Harness, scan: &str, vendor_id: &str) -> (i64, String) {
    db(h)
        .query_row(
            "SELECT f.id, f.fingerprint FROM findings f JOIN scans s ON s.id = f.scan_id
             WHERE s.name = ?1 AND f.vendor_id = ?2",
            [scan, vendor_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

fn state_of(h: &Harness, id: i64) -> String {
    finding(h, &id.to_string())["state"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_triage_holds_through_resyncs_is_fixed_when_dropped_and_returns_triaged_with_its_events_in_order(
) {
    // Salt Security serves a new generation only when told to, so the test decides when the
    // vendor drops the finding and when it brings it back.
    let h = Harness::start(options(1, 20, 30.0));
    h.write_config(&[("api", "salt", "project-1")]);
    let (gen0, gen1, gen2) = (
        h.expected("salt", 1, 0),
        h.expected("salt", 1, 1),
        h.expected("salt", 1, 2),
    );
    let vendor_id = gen0
        .iter()
        .find(|id| !gen1.contains(*id) && gen2.contains(*id))
        .expect("the simulator drops a finding at generation 1 and brings it back at 2")
        .clone();
    ok(&h.sync());
    let (id, fingerprint) = by_vendor_id(&h, "api", &vendor_id);

    // Triaged by a fingerprint prefix; `--by` names the person.
    let out = ok(&h.scansync(&[
        "triage",
        &fingerprint[..10],
        "--state",
        "accepted",
        "--reason",
        "the gateway blocks this path",
        "--by",
        "dana",
    ]));
    assert!(out.contains("-> accepted"), "{out}");

    ok(&h.sync());
    assert_eq!(state_of(&h, id), "accepted", "a re-sync keeps the triage");

    h.sim.advance();
    ok(&h.sync());
    assert_eq!(state_of(&h, id), "fixed", "the vendor dropped it");

    h.sim.advance();
    ok(&h.sync());
    let detail = finding(&h, &id.to_string());
    assert_eq!(
        detail["state"], "accepted",
        "back to its triage, not reopened"
    );
    assert_eq!(
        kinds(&detail),
        ["created", "state_set", "fixed", "returned"],
        "{detail:#}"
    );
    let set = &detail["history"][1];
    assert_eq!(set["by"], "dana");
    assert_eq!(set["reason"], "the gateway blocks this path");
    assert_eq!(detail["triage"]["by"], "dana");
    assert_eq!(detail["triage_by"], "dana");

    // The table form shows the triage and the history too.
    let table = ok(&h.scansync(&["finding", &id.to_string()]));
    assert!(
        table.contains("accepted by dana") && table.contains("returned"),
        "{table}"
    );
    // `findings --id` picks it, with the triage column.
    let listed = ok(&h.scansync(&["findings", "--id", &id.to_string()]));
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed.contains("TRIAGE") && listed.contains("dana"),
        "{listed}"
    );
}

#[test]
fn an_acceptance_whose_until_has_passed_is_open_at_the_next_run_with_an_expired_event() {
    let h = Harness::start(options(1, 8, 0.0));
    h.write_config(&[("api", "salt", "project-1")]);
    ok(&h.sync());
    let first = &findings(&h, "api")[0];
    let id = first["id"].as_i64().unwrap().to_string();
    let out = h.scansync(&[
        "triage",
        &id,
        "--state",
        "accepted",
        "--reason",
        "until the fix ships",
        "--until",
        "2020-01-01",
    ]);
    assert_exit(&out, 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not in the future"), "{stderr}");
    assert_eq!(state_of(&h, id.parse().unwrap()), "accepted");

    ok(&h.sync());
    let detail = finding(&h, &id);
    assert_eq!(detail["state"], "open");
    let last = detail["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["kind"], "expired", "{detail:#}");
    assert_eq!(last["old"], "accepted");
    assert_eq!(last["new"], "open");
    assert_eq!(last["until"], "2020-01-01");
    assert!(last["run_id"].is_i64(), "the run that listed it decided");
    assert_eq!(detail["triage_until"], Value::Null);
}

#[test]
fn a_suppression_rule_applies_at_import_shows_in_finding_and_exports_and_is_released_when_removed()
{
    let h = Harness::start(options(1, 12, 0.0));
    h.write_config(&[("web", "ct", "project-1")]);
    let base = std::fs::read_to_string(h.config_path()).unwrap();
    ok(&h.sync());
    let before = findings(&h, "web");
    let title = before[0]["title"].as_str().unwrap().to_string();
    let expected: BTreeSet<i64> = before
        .iter()
        .filter(|f| {
            f["title"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains(&title.to_lowercase())
        })
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    assert!(
        expected.len() < before.len(),
        "the rule must leave some open"
    );

    // A rule without a reason is a config error naming the field.
    std::fs::write(
        h.config_path(),
        format!("{base}\n[[suppress]]\ntitle = \"x\"\nstate = \"accepted\"\n"),
    )
    .unwrap();
    let bad = h.scansync(&["check-config"]);
    assert_exit(&bad, 78);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("suppress[0].reason"),
        "{}",
        text(&bad)
    );

    let rule = format!(
        "{base}\n[[suppress]]\nname = \"known-noise\"\ntitle = {}\nstate = \"false_positive\"\n\
         reason = \"fires on generated code\"\n",
        toml::Value::String(title.clone())
    );
    std::fs::write(h.config_path(), &rule).unwrap();
    let check = ok(&h.scansync(&["check-config"]));
    assert!(
        check.contains("known-noise")
            && check.contains(&format!("matches {} current finding(s)", expected.len())),
        "{check}"
    );

    ok(&h.sync());
    let after = findings(&h, "web");
    for f in &after {
        let id = f["id"].as_i64().unwrap();
        if expected.contains(&id) {
            assert_eq!(f["state"], "false_positive", "{f}");
            assert_eq!(f["triage_by"], "rule:known-noise");
            assert_eq!(f["triage_reason"], "fires on generated code");
        } else {
            assert_eq!(f["state"], "open", "{f}");
        }
    }
    let one = *expected.iter().next().unwrap();
    let detail = finding(&h, &one.to_string());
    assert_eq!(kinds(&detail).last().unwrap(), "suppressed");
    assert_eq!(
        detail["history"].as_array().unwrap().last().unwrap()["rule"],
        "known-noise"
    );
    let table = ok(&h.scansync(&["finding", &one.to_string()]));
    assert!(table.contains("rule:known-noise"), "{table}");

    // Exports carry it: CSV columns, and SARIF suppressions with the reason.
    let csv = ok(&h.scansync(&["export", "--format", "csv"]));
    let header = csv.lines().next().unwrap();
    assert!(
        header.ends_with("triage_reason,triage_by,triage_until,id"),
        "{header}"
    );
    let sarif_text = ok(&h.scansync(&["export", "--format", "sarif"]));
    let sarif: Value = serde_json::from_str(&sarif_text).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let suppressed: Vec<&Value> = results
        .iter()
        .filter(|r| r.get("suppressions").is_some())
        .collect();
    assert_eq!(suppressed.len(), expected.len());
    for r in &suppressed {
        let s = &r["suppressions"][0];
        assert_eq!(s["kind"], "external");
        assert_eq!(s["status"], "accepted");
        assert_eq!(s["justification"], "fires on generated code");
    }
    validate_sarif(&sarif_text);

    // The rule removed: released at the next run, with an event naming it.
    std::fs::write(h.config_path(), &base).unwrap();
    ok(&h.sync());
    let detail = finding(&h, &one.to_string());
    assert_eq!(detail["state"], "open");
    let last = detail["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["kind"].as_str(), last["rule"].as_str()),
        (Some("released"), Some("known-noise"))
    );
    assert!(findings(&h, "web").iter().all(|f| f["state"] == "open"));
}

#[test]
fn scan_thresholds_never_count_accepted_findings() {
    let h = Harness::start(options(1, 12, 0.0));
    h.write_config(&[("web", "ct", "project-1")]);
    let scan = [
        "scan",
        "-p",
        "project-1",
        "-t",
        "codethreat",
        "--threshold-high",
        "0",
    ];
    let first = h.scansync(&scan);
    assert_exit(&first, 10);
    let high: Vec<String> = findings(&h, "web")
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("high" | "critical")))
        .map(|f| f["id"].as_i64().unwrap().to_string())
        .collect();
    assert!(!high.is_empty());
    let mut args = vec!["triage"];
    args.extend(high.iter().map(String::as_str));
    args.extend([
        "--state",
        "accepted",
        "--reason",
        "accepted for this release",
    ]);
    ok(&h.scansync(&args));
    let again = h.scansync(&scan);
    assert_exit(&again, 0);
    assert!(findings(&h, "web")
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("high" | "critical")))
        .all(|f| f["state"] == "accepted"));
}

#[test]
fn an_ambiguous_or_unknown_finding_is_a_clear_error_and_triages_nothing() {
    let h = Harness::start(options(1, 4, 0.0));
    h.write_config(&[("web", "ct", "project-1")]);
    ok(&h.sync());
    let id = findings(&h, "web")[0]["id"].as_i64().unwrap().to_string();
    let out = h.scansync(&[
        "triage",
        &id,
        "deadbeefdeadbeef",
        "--state",
        "false_positive",
        "--reason",
        "x",
    ]);
    assert_exit(&out, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no finding"),
        "{}",
        text(&out)
    );
    assert_eq!(
        state_of(&h, id.parse().unwrap()),
        "new",
        "one bad key triages nothing"
    );
}

/// Microsoft's SARIF validator on `text`, where installed (see tests/export_formats.rs).
fn validate_sarif(text: &str) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let installed = std::env::var_os("SARIF_MULTITOOL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/sarif-multitool"))
        .join("node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool")
        .is_file();
    if !installed
        && std::env::var_os("SCANSYNC_VALIDATE_SARIF").is_none()
        && !common::tools_required()
    {
        common::tool_missing(
            "SARIF validation of suppressions",
            "the SARIF Multitool is not installed; run `scripts/validate-sarif --install-only`",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("triaged.sarif");
    std::fs::write(&file, text).unwrap();
    let out = std::process::Command::new(root.join("scripts/validate-sarif"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "validator reported errors:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// From the attack review of triage (each failed on the code it was written against).

/// `triage A B --state open` where A is a person's acceptance and B is held by a
/// `[[suppress]]` rule: the command fails on B (a rule's triage cannot be removed here) and
/// exits 1 — but A has already been changed, and nothing printed says so. The CLI promises
/// "every key is resolved before anything is written", i.e. a failing command triages
/// nothing; it resolves up front but then commits one transaction per finding.
#[test]
fn a_triage_command_that_fails_on_one_finding_changes_none() {
    let h = Harness::start(options(1, 12, 0.0));
    h.write_config(&[("web", "ct", "project-1")]);
    let base = std::fs::read_to_string(h.config_path()).unwrap();
    ok(&h.sync());
    let rows = findings(&h, "web");
    let suppressed_title = rows[0]["title"].as_str().unwrap().to_string();
    let person = rows
        .iter()
        .find(|f| {
            !f["title"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains(&suppressed_title.to_lowercase())
        })
        .expect("a finding the rule does not match")["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let by_rule = rows[0]["id"].as_i64().unwrap().to_string();
    std::fs::write(
        h.config_path(),
        format!(
            "{base}\n[[suppress]]\nname = \"noise\"\ntitle = {}\nstate = \"false_positive\"\n\
             reason = \"generated code\"\n",
            toml::Value::String(suppressed_title)
        ),
    )
    .unwrap();
    ok(&h.sync());
    assert_eq!(finding(&h, &by_rule)["state"], "false_positive");
    ok(&h.scansync(&[
        "triage",
        &person,
        "--state",
        "accepted",
        "--reason",
        "behind the VPN",
        "--by",
        "dana",
    ]));
    assert_eq!(finding(&h, &person)["state"], "accepted");

    let out = h.scansync(&[
        "triage", &person, &by_rule, "--state", "open", "--reason", "re-check",
    ]);
    assert_exit(&out, 1);
    assert_eq!(
        finding(&h, &person)["state"],
        "accepted",
        "the command failed (stdout {:?}, stderr {:?}) yet changed finding {person}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A person accepts every high and critical finding of scan `web`; CI then runs
/// `scan -b feature --threshold-high 0` on a feature branch of the same project, which the
/// vendor answers with the very same findings. The branch run keeps its own lifecycle
/// (`web@feature`) and none of the person's triage reaches it, so the build fails on the
/// findings that were accepted — while a `[[suppress]]` rule for `web` does cover
/// `web@feature`. Promise 4: "CI thresholds never count triaged findings".
#[test]
fn a_feature_branch_scan_does_not_fail_on_findings_accepted_on_its_scan() {
    let h = Harness::start(options(1, 12, 0.0));
    h.write_config(&[("web", "ct", "project-1")]);
    ok(&h.sync());
    let high: Vec<String> = findings(&h, "web")
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("high" | "critical")))
        .map(|f| f["id"].as_i64().unwrap().to_string())
        .collect();
    assert!(!high.is_empty());
    let mut args = vec!["triage"];
    args.extend(high.iter().map(String::as_str));
    args.extend([
        "--state",
        "accepted",
        "--reason",
        "accepted for this release",
    ]);
    ok(&h.scansync(&args));
    let main = h.scansync(&[
        "scan",
        "-p",
        "project-1",
        "-t",
        "codethreat",
        "--threshold-high",
        "0",
    ]);
    assert_exit(&main, 0);
    let feature = h.scansync(&[
        "scan",
        "-p",
        "project-1",
        "-t",
        "codethreat",
        "-b",
        "feature",
        "--threshold-high",
        "0",
    ]);
    let accepted_on_main: std::collections::BTreeSet<String> = findings(&h, "web")
        .iter()
        .filter(|f| f["state"] == "accepted")
        .map(|f| f["fingerprint"].as_str().unwrap().to_string())
        .collect();
    let branch_rows = findings(&h, "web@feature");
    let untriaged_high: Vec<String> = branch_rows
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("high" | "critical")))
        .map(|f| format!("{} {}", f["fingerprint"], f["state"]))
        .collect();
    // The branch's high findings are exactly the ones accepted on web.
    for f in branch_rows
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("high" | "critical")))
    {
        assert!(
            accepted_on_main.contains(f["fingerprint"].as_str().unwrap()),
            "{f}"
        );
    }
    assert_eq!(
        feature.status.code(),
        Some(0),
        "the branch scan failed its threshold on findings accepted on web (same fingerprints): \
         {untriaged_high:?}\n{}",
        text(&feature)
    );
}

/// `--by ""` (or blanks) is taken as the person: the triage is stored without anyone, so
/// `finding` shows no who, though "--by defaults to the user running it" and every triage
/// is "an event with who, why and until". `--reason ""` is refused; `--by ""` is not.
#[test]
fn a_triage_always_says_who() {
    let h = Harness::start(options(1, 4, 0.0));
    h.write_config(&[("web", "ct", "project-1")]);
    ok(&h.sync());
    let id = findings(&h, "web")[0]["id"].as_i64().unwrap().to_string();
    let out = h.scansync(&[
        "triage",
        &id,
        "--state",
        "false_positive",
        "--reason",
        "constant input",
        "--by",
        " ",
    ]);
    if out.status.success() {
        let detail = finding(&h, &id);
        let by = detail["triage"]["by"].as_str().unwrap_or_default();
        assert!(
            !by.trim().is_empty(),
            "triage stored with by = {:?}: {detail:#}",
            detail["triage"]["by"]
        );
    }
}
