//! Adversarial tests for triage (#13), the real binary against the simulator. Each FAILS on
//! the code it was written against; see the comment on each for the promise it breaks.

mod common;
mod harness;

use harness::*;
use serde_json::Value;

fn ok(out: &std::process::Output) -> String {
    assert_exit(out, 0);
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn findings(h: &Harness, scan: &str) -> Vec<Value> {
    ok(&h.scansync(&["findings", "--format", "json", "--scan", scan]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn finding(h: &Harness, key: &str) -> Value {
    serde_json::from_str(&ok(&h.scansync(&["finding", key, "--format", "json"]))).unwrap()
}

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
