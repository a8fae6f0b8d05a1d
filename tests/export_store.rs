//! `scansync export` of a real store: thousands of findings from both vendors, synced from
//! the simulator by the real binary, exported to `--output`, are exactly the findings that
//! `scansync findings --format json` lists, field for field.

use scansync::sim::{SimOptions, Simulator};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A simulator on its own runtime, so it serves while the test thread waits for the binary.
struct Harness {
    _rt: tokio::runtime::Runtime,
    sim: Simulator,
    dir: tempfile::TempDir,
}

impl Harness {
    fn start(opts: SimOptions) -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sim = rt
            .block_on(Simulator::start(opts.clone()))
            .expect("simulator starts");
        let dir = tempfile::tempdir().unwrap();
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let mut config = format!(
            "[store]\npath = {store}\n\n[daemon]\npoll_interval = \"1s\"\n\n\
             [instances.ct]\nvendor = \"codethreat\"\nurl = {ct}\norganization = {org}\n\
             token = {token}\n\n\
             [instances.salt]\nvendor = \"saltsecurity\"\nurl = {salt}\ntoken = {token}\n",
            store = q(&dir.path().join("scansync.db").to_string_lossy()),
            ct = q(&sim.codethreat_url()),
            salt = q(&sim.salt_url()),
            org = q(&opts.organization),
            token = q(&opts.token),
        );
        for (name, instance, project) in [
            ("ct-shop", "ct", "project-1"),
            ("ct-billing", "ct", "project-2"),
            ("salt-api", "salt", "project-3"),
        ] {
            config.push_str(&format!(
                "\n[[scans]]\nname = {}\ninstance = {}\nbind_to = {}\nschedule = \"now\"\n",
                q(name),
                q(instance),
                q(project)
            ));
        }
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Harness { _rt: rt, sim, dir }
    }

    fn scansync(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_scansync"))
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("scansync runs");
        assert!(
            out.status.success(),
            "scansync {args:?}: exit {:?}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// JSON Lines → objects, every line one object.
fn objects(text: &str) -> Vec<Map<String, Value>> {
    text.lines()
        .map(|line| match serde_json::from_str(line) {
            Ok(Value::Object(m)) => m,
            other => panic!("not a JSON object per line: {line:?} ({other:?})"),
        })
        .collect()
}

/// Each object cut down to `keys`, as canonical text (serde_json's map sorts its keys).
fn projected(objects: &[Map<String, Value>], keys: &BTreeSet<String>) -> BTreeSet<String> {
    objects
        .iter()
        .map(|o| {
            let cut: Map<String, Value> = o
                .iter()
                .filter(|(k, _)| keys.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Value::Object(cut).to_string()
        })
        .collect()
}

fn keys_of(objects: &[Map<String, Value>]) -> BTreeSet<String> {
    objects.iter().flat_map(|o| o.keys().cloned()).collect()
}

fn file_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn jsonl_export_of_a_synced_store_is_exactly_the_findings_listing() {
    let h = Harness::start(SimOptions {
        projects: 3,
        findings_per_project: 1_500,
        churn: 15.0,
        scan_seconds: 0.2,
        seed: 11,
        ..SimOptions::default()
    });
    // Three syncs with churn in between, so the store holds open, fixed and reopened findings
    // (a reopen needs a finding to vanish and come back) with different times_seen.
    for _ in 0..3 {
        h.scansync(&["sync"]);
        h.sim.advance();
    }

    let out = h.path("findings.jsonl");
    let export = h.scansync(&[
        "export",
        "--format",
        "jsonl",
        "--output",
        out.to_str().unwrap(),
    ]);
    let exported = objects(&file_text(&out));
    let listed =
        objects(&String::from_utf8(h.scansync(&["findings", "--format", "json"]).stdout).unwrap());

    // Thousands of findings of both vendors in several states, or the comparison pins little.
    assert!(
        exported.len() >= 4_500,
        "{} findings exported",
        exported.len()
    );
    let by = |key: &str| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for o in &exported {
            *m.entry(o[key].as_str().unwrap().to_string()).or_default() += 1;
        }
        m
    };
    assert_eq!(
        by("vendor").keys().collect::<Vec<_>>(),
        ["codethreat", "saltsecurity"]
    );
    let states = by("state");
    for state in ["open", "fixed", "reopened"] {
        assert!(
            states.contains_key(state),
            "no {state} finding in {states:?}"
        );
    }
    assert!(String::from_utf8_lossy(&export.stderr)
        .contains(&format!("exported {} findings", exported.len())));

    // Same findings, none twice, the shared fields equal.
    assert_eq!(exported.len(), listed.len());
    let shared = keys_of(&listed);
    assert!(shared.is_subset(&keys_of(&exported)));
    let exported_set = projected(&exported, &shared);
    assert_eq!(
        exported_set.len(),
        exported.len(),
        "an exported finding appears twice"
    );
    assert_eq!(exported_set, projected(&listed, &shared));

    // The export adds the fields an export promises, on every line.
    for key in [
        "cwe",
        "owasp",
        "rule_id",
        "description",
        "remediation",
        "vendor_url",
        "fingerprint",
    ] {
        assert!(
            exported.iter().all(|o| o.contains_key(key)),
            "{key} missing from some exported line"
        );
    }
    assert!(exported.iter().all(|o| !o.contains_key("raw")));
}

/// The export of one sync against what the simulator generated (`sim::data`), computed here
/// from the simulator's own description of each finding, not from the exporter's code.
#[test]
fn jsonl_export_of_one_sync_is_what_the_simulator_generated() {
    let opts = SimOptions {
        projects: 3,
        findings_per_project: 300,
        churn: 0.0,
        scan_seconds: 0.0,
        seed: 5,
        ..SimOptions::default()
    };
    let h = Harness::start(opts.clone());
    h.scansync(&["sync"]);
    let out = h.path("findings.jsonl");
    h.scansync(&[
        "export",
        "--format",
        "jsonl",
        "--output",
        out.to_str().unwrap(),
    ]);
    let exported = objects(&file_text(&out));
    let cell = |o: &Map<String, Value>, k: &str| o[k].as_str().unwrap_or_default().to_string();
    let got: BTreeSet<[String; 6]> = exported
        .iter()
        .filter(|o| o["vendor"] == "codethreat")
        .map(|o| {
            [
                cell(o, "bind_to"),
                cell(o, "title"),
                cell(o, "severity"),
                cell(o, "location"),
                cell(o, "cwe"),
                cell(o, "state"),
            ]
        })
        .collect();
    let mut want = BTreeSet::new();
    for project in [1, 2] {
        let findings = scansync::sim::data::project_findings(
            opts.seed,
            project,
            opts.findings_per_project,
            opts.churn,
            0,
        );
        for f in findings {
            let location = if f.end_line != f.start_line {
                format!("{}:{}-{}", f.file_path, f.start_line, f.end_line)
            } else {
                format!("{}:{}", f.file_path, f.start_line)
            };
            want.insert([
                format!("project-{project}"),
                f.weakness.title.to_string(),
                f.severity.codethreat().to_lowercase(),
                location,
                f.weakness.cwe.to_string(),
                "new".to_string(),
            ]);
        }
    }
    assert_eq!(want.len(), 600, "the simulator's two CodeThreat projects");
    assert_eq!(
        exported
            .iter()
            .filter(|o| o["vendor"] == "codethreat")
            .count(),
        want.len()
    );
    let missing: Vec<_> = want.difference(&got).take(3).collect();
    let extra: Vec<_> = got.difference(&want).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "generated but not exported: {missing:?}\nexported but not generated: {extra:?}"
    );
}
