//! The simulator on its own runtime and the real `scansync` binary against it: what the
//! end-to-end test files share (`mod harness;`). Each uses a part; the rest would be dead
//! code there.
#![allow(dead_code)]

use scansync::sim::data::project_findings;
use scansync::sim::{SimOptions, Simulator};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

pub const TOKEN: &str = "tok-e2e-9f3b-VERY-SECRET-value";

/// A simulator on its own runtime: the runtime's worker threads serve requests while the test
/// thread waits for the binary.
pub struct Harness {
    _rt: tokio::runtime::Runtime,
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
    pub opts: SimOptions,
}

/// One `[[scans]]` entry: name, "ct" or "salt", bound project.
pub type ScanDef = (&'static str, &'static str, &'static str);

impl Harness {
    pub fn start(opts: SimOptions) -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let opts = SimOptions {
            token: TOKEN.to_string(),
            ..opts
        };
        let sim = rt
            .block_on(Simulator::start(opts.clone()))
            .expect("simulator starts");
        Harness {
            _rt: rt,
            sim,
            dir: tempfile::tempdir().unwrap(),
            opts,
        }
    }

    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("scansync.db")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    pub fn write_config(&self, scans: &[ScanDef]) {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let mut text = format!(
            "[store]\npath = {store}\n\n[daemon]\npoll_interval = \"1s\"\n\n\
             [instances.ct]\nvendor = \"codethreat\"\nurl = {ct}\norganization = {org}\n\
             token = {token}\ntimeout = \"10s\"\n\n\
             [instances.salt]\nvendor = \"saltsecurity\"\nurl = {salt}\ntoken = {token}\n\
             timeout = \"10s\"\n",
            store = q(&self.store_path().to_string_lossy()),
            ct = q(&self.sim.codethreat_url()),
            salt = q(&self.sim.salt_url()),
            org = q(&self.opts.organization),
            token = q(TOKEN),
        );
        for (name, instance, bind_to) in scans {
            text.push_str(&format!(
                "\n[[scans]]\nname = {}\ninstance = {}\nbind_to = {}\nschedule = \"now\"\n",
                q(name),
                q(instance),
                q(bind_to)
            ));
        }
        std::fs::write(self.config_path(), text).unwrap();
    }

    pub fn scansync(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_scansync"))
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("scansync runs")
    }

    pub fn sync(&self) -> Output {
        self.scansync(&["sync"])
    }

    /// The simulator's vendor ids for one project at one generation.
    pub fn expected(&self, vendor: &str, project: u32, generation: u64) -> BTreeSet<String> {
        project_findings(
            self.opts.seed,
            project,
            self.opts.findings_per_project,
            self.opts.churn,
            generation,
        )
        .map(|f| if vendor == "salt" { f.salt_id() } else { f.id })
        .collect()
    }

    /// The identities fingerprint recipe 2 gives one listing, computed here from the
    /// simulator's data rather than by the code under test: the parts (rule, place, title)
    /// and, for findings sharing them, their occurrence in listing order.
    pub fn identities(&self, vendor: &str, project: u32, generation: u64) -> BTreeSet<String> {
        let mut seen: std::collections::HashMap<String, u32> = Default::default();
        project_findings(
            self.opts.seed,
            project,
            self.opts.findings_per_project,
            self.opts.churn,
            generation,
        )
        .map(|f| {
            let parts = if vendor == "salt" {
                format!(
                    "{}|api:{} {} {}|{}",
                    f.gap.name,
                    f.method,
                    f.hostname,
                    f.api_path,
                    f.gap.name.to_lowercase()
                )
            } else {
                format!(
                    "{}|code:{}|{}",
                    f.weakness.weakness_id,
                    f.file_path,
                    f.weakness.title.to_lowercase()
                )
            };
            let n = seen.entry(parts.clone()).or_default();
            *n += 1;
            format!("{parts}#{}", *n - 1)
        })
        .collect()
    }

    /// (vendor_id, state) of every stored finding of one scan.
    pub fn stored(&self, scan: &str) -> Vec<(String, String)> {
        let db = rusqlite::Connection::open_with_flags(
            self.store_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut stmt = db
            .prepare(
                "SELECT f.vendor_id, f.state FROM findings f JOIN scans s ON s.id = f.scan_id \
                 WHERE s.name = ?1",
            )
            .unwrap();
        let rows = stmt
            .query_map([scan], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows
    }

    pub fn stored_ids(&self, scan: &str) -> BTreeSet<String> {
        self.stored(scan).into_iter().map(|(id, _)| id).collect()
    }

    pub fn open_ids(&self, scan: &str) -> BTreeSet<String> {
        self.stored(scan)
            .into_iter()
            .filter(|(_, state)| state != "fixed")
            .map(|(id, _)| id)
            .collect()
    }

    /// The runs of one scan, oldest first, as `scansync runs --format json` prints them.
    pub fn runs(&self, scan: &str) -> Vec<Value> {
        let out = self.scansync(&["runs", "--format", "json", "--scan", scan, "--limit", "100"]);
        assert!(out.status.success(), "runs failed: {}", text(&out));
        let mut runs: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        runs.sort_by_key(|r| r["id"].as_i64().unwrap());
        runs
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
}

pub fn options(projects: u32, findings_per_project: u32, churn: f64) -> SimOptions {
    SimOptions {
        projects,
        findings_per_project,
        churn,
        scan_seconds: 0.2,
        seed: 7,
        ..SimOptions::default()
    }
}

pub fn counter(run: &Value, name: &str) -> u64 {
    run[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in {run}"))
}
