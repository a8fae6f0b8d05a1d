//! `scansync store copy`, the upgrade path from SQLite to PostgreSQL: a store of 100,000
//! findings copied into a fresh PostgreSQL database reads back the same through the real
//! binary (`findings` and `runs` as JSON, byte for byte), a store with rows is never copied
//! into, and the copy goes on taking new rows (its id sequences moved past the copied ids).
//!
//! The server is the one named in `SCANSYNC_TEST_POSTGRES` (a url with user and password, a
//! user who may create databases); each test makes a database of its own and drops it.
//! Without the variable the tests say SKIPPED and pass, except under CI, where they fail.

mod common;

use common::output_text as text;

use scansync::config::{EventType, PgTarget, Route, StoreLocation};
use scansync::finding::{Finding, Location, Severity, Verdict};
use scansync::store::{RunEnd, RunScope, Store};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const POSTGRES_URL_VAR: &str = "SCANSYNC_TEST_POSTGRES";

/// A database of its own on the test server, dropped at the end (connections and all).
struct FreshDb {
    admin: postgres::Config,
    name: String,
}

impl FreshDb {
    /// `None` (after saying SKIPPED, or failing under CI) when no server is named.
    fn new(check: &str) -> Option<FreshDb> {
        let Ok(url) = std::env::var(POSTGRES_URL_VAR) else {
            common::tool_missing(
                check,
                &format!(
                    "no PostgreSQL server; set {POSTGRES_URL_VAR}=postgres://user:password@\
                     127.0.0.1:5432/db?sslmode=disable"
                ),
            );
            return None;
        };
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "scansync_copy_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin: postgres::Config = url.parse().expect("SCANSYNC_TEST_POSTGRES is a url");
        let db = FreshDb { admin, name };
        // One statement each: PostgreSQL runs neither inside a transaction block.
        db.admin_sql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name));
        db.admin_sql(&format!("CREATE DATABASE {}", db.name));
        Some(db)
    }

    fn admin_sql(&self, sql: &str) {
        let mut client = self.admin.connect(postgres::NoTls).expect("connects");
        client.batch_execute(sql).expect(sql);
    }

    fn user(&self) -> &str {
        self.admin.get_user().expect("the url names a user")
    }

    /// The password, for `PGPASSWORD` (scansync refuses a url that holds one).
    fn password(&self) -> String {
        String::from_utf8(self.admin.get_password().unwrap_or_default().to_vec()).unwrap()
    }

    /// The database's url without a password, as `--store` and `--to` take it.
    fn url(&self) -> String {
        let host = match &self.admin.get_hosts()[0] {
            postgres::config::Host::Tcp(host) => host.clone(),
            #[cfg(unix)]
            postgres::config::Host::Unix(_) => panic!("a TCP server is needed"),
        };
        let port = self.admin.get_ports().first().copied().unwrap_or(5432);
        let tls = match self.admin.get_ssl_mode() {
            postgres::config::SslMode::Disable => "disable",
            postgres::config::SslMode::Require => "require",
            _ => "prefer",
        };
        format!(
            "postgres://{}@{host}:{port}/{}?sslmode={tls}",
            self.user(),
            self.name
        )
    }

    /// The store there, opened in this process.
    fn location(&self) -> StoreLocation {
        StoreLocation::Postgres(PgTarget {
            url: self.url(),
            password: Some(scansync::secret::Secret::new(self.password())),
            ca_file: None,
            schema: None,
        })
    }

    /// `scansync ARGS` with the password in `PGPASSWORD`.
    fn scansync(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_scansync"))
            .args(args)
            .env("PGPASSWORD", self.password())
            .env_remove("RUST_LOG")
            .env_remove("SCANSYNC_CONFIG")
            .output()
            .expect("scansync runs")
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        if let Ok(mut client) = self.admin.connect(postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn assert_ok(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
}

fn scope(scan: &str) -> RunScope {
    RunScope {
        scan: scan.into(),
        instance: "ct-main".into(),
        vendor: "codethreat".into(),
        bind_to: format!("{scan}-project"),
        branch: if scan == "api" {
            None
        } else {
            Some("main".into())
        },
        trigger: "schedule".into(),
        ..RunScope::default()
    }
}

/// Finding `n`: code or API, every severity, optional fields present and absent, text that
/// needs quoting and non-ASCII characters, so that the copy has to keep them all.
fn finding(n: usize) -> Finding {
    let location = match n % 3 {
        0 => Location::Code {
            path: format!("src/module{}/file{n}.rs", n % 97),
            start_line: Some((n % 500) as u32 + 1),
            end_line: n.is_multiple_of(2).then_some((n % 500) as u32 + 4),
        },
        1 => Location::Api {
            method: ["GET", "POST", "DELETE"][n % 3].into(),
            path: format!("/v1/items/{n}"),
            host: "payments.example.com".into(),
        },
        _ => Location::Unknown,
    };
    Finding {
        vendor_id: n.is_multiple_of(4).then(|| format!("v-{n}")),
        title: format!("Problem {n}: \"quoted\" O'Brien — ünïcode ✓"),
        severity: Severity::ALL[n % 5],
        vendor_status: Some(["Open", "In progress"][n % 2].into()),
        cwe: (!n.is_multiple_of(5)).then(|| format!("CWE-{}", 20 + n % 60)),
        owasp: n.is_multiple_of(6).then(|| "A03:2021".into()),
        rule_id: Some(format!("rule-{}", n % 41)),
        location,
        description: Some(format!("line one\nline two {n}\ttabbed")),
        remediation: (n % 2 == 1).then(|| "Escape it.".into()),
        vendor_url: Some(format!("https://ct.example/f/{n}")),
        vendor_first_seen: Some("2025-03-01T10:00:00Z".into()),
        vendor_last_seen: None,
        raw: format!("{{\"id\":{n},\"note\":\"\\u00e9 and \\\"quotes\\\"\"}}"),
        verdict: n.is_multiple_of(10).then_some(Verdict::Active),
    }
}

fn run(store: &mut Store, scan: &str, pages: impl Iterator<Item = Vec<Finding>>, end: RunEnd) {
    let id = store.begin_run(&scope(scan)).unwrap();
    for page in pages {
        store.upsert_page(id, &page).unwrap();
    }
    store.finish_run(id, end).unwrap();
}

/// A SQLite store with `findings` findings in scan "shop" (one run, pages of 1,000), and a
/// small scan "api" whose second run fixed some, with webhook notifications of both runs,
/// a failed run, and a local triage.
fn sqlite_store(path: &Path, findings: usize) {
    let mut store = Store::open(path).unwrap();
    store.set_webhook_routes(
        vec![Route {
            name: "team".into(),
            events: vec![
                EventType::FindingsNew,
                EventType::FindingsFixed,
                EventType::RunFailed,
            ],
            min_severity: None,
            scans: vec!["api".into()],
        }],
        scansync::webhooks::payload::body,
    );
    let pages = (0..findings)
        .step_by(1000)
        .map(|start| (start..(start + 1000).min(findings)).map(finding).collect());
    run(&mut store, "shop", pages, RunEnd::Succeeded);
    let api = |range: std::ops::Range<usize>| std::iter::once(range.map(finding).collect());
    run(&mut store, "api", api(0..40), RunEnd::Succeeded);
    run(&mut store, "api", api(0..35), RunEnd::Succeeded);
    run(
        &mut store,
        "api",
        api(0..10),
        RunEnd::Failed("vendor said 502".into()),
    );
    let id = store
        .resolve_finding(&finding(3).fingerprint(0), Some("api"))
        .unwrap();
    store
        .triage(
            id,
            &scansync::store::TriageRequest {
                state: scansync::store::FindingState::FalsePositive,
                reason: Some("test data".into()),
                by: Some("dana".into()),
                until: None,
                reopen_on_severity_increase: false,
            },
        )
        .unwrap();
}

#[test]
fn a_copy_of_100k_findings_into_postgresql_reads_back_byte_identical() {
    let Some(pg) = FreshDb::new("store copy of 100,000 findings into PostgreSQL") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scansync.db");
    let t0 = std::time::Instant::now();
    sqlite_store(&file, 100_000);
    eprintln!("built the SQLite store in {:.1?}", t0.elapsed());
    let (file, url) = (file.to_str().unwrap(), pg.url());

    let t0 = std::time::Instant::now();
    let out = pg.scansync(&["store", "copy", "--from", file, "--to", &url]);
    eprintln!("store copy took {:.1?}", t0.elapsed());
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("   100040  findings"), "{}", text(&out));
    assert!(stdout.contains("verified"), "{}", text(&out));

    for command in [
        &["findings", "--format", "json"][..],
        &["runs", "--format", "json", "--limit", "100"][..],
    ] {
        let read = |store: &str| {
            let out = pg.scansync(&[command, &["--store", store]].concat());
            assert_ok(&out);
            out.stdout
        };
        let (from_sqlite, from_postgres) = (read(file), read(&url));
        assert!(from_sqlite.len() > 1000, "{command:?} printed little");
        assert!(
            from_sqlite == from_postgres,
            "`{}` differs between the SQLite store and its PostgreSQL copy",
            command.join(" ")
        );
    }
    let findings = pg.scansync(&["findings", "--format", "json", "--store", &url]);
    assert_eq!(
        String::from_utf8_lossy(&findings.stdout).lines().count(),
        100_040
    );
}

#[test]
fn a_store_with_rows_is_not_copied_into_and_the_copy_takes_new_runs() {
    let Some(pg) = FreshDb::new("store copy into PostgreSQL (small)") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scansync.db");
    sqlite_store(&file, 50);
    let (file, url) = (file.to_str().unwrap(), pg.url());
    assert_ok(&pg.scansync(&["store", "copy", "--from", file, "--to", &url]));

    // Copying again would collide with every id: refused, the copy untouched.
    let before = pg.scansync(&["findings", "--format", "json", "--store", &url]);
    let out = pg.scansync(&["store", "copy", "--from", file, "--to", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not empty") && stderr.contains("nothing was copied"),
        "{stderr}"
    );
    let after = pg.scansync(&["findings", "--format", "json", "--store", &url]);
    assert_eq!(before.stdout, after.stdout);

    // The copy goes on: a run inserts runs, findings, events and notifications after the
    // copied ids (a sequence left at 1 would collide at the first insert).
    let mut store = Store::open_at(&pg.location()).unwrap();
    store.set_webhook_routes(
        vec![Route {
            name: "team".into(),
            events: vec![EventType::FindingsNew],
            min_severity: None,
            scans: Vec::new(),
        }],
        scansync::webhooks::payload::body,
    );
    let id = store.begin_run(&scope("shop")).unwrap();
    assert_eq!(id, 5, "the copied store had 4 runs");
    store
        .upsert_page(id, &(0..80).map(finding).collect::<Vec<_>>())
        .unwrap();
    let ended = store.finish_run(id, RunEnd::Succeeded).unwrap();
    assert_eq!(ended.counts.new, 30);
    let out = pg.scansync(&["findings", "--format", "json", "--store", &url]);
    assert_ok(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        80 + 40
    );

    // And a SQLite file can be made from the PostgreSQL copy again.
    let back = dir.path().join("back.db");
    let back = back.to_str().unwrap();
    assert_ok(&pg.scansync(&["store", "copy", "--from", &url, "--to", back]));
    let read = |store: &str| {
        pg.scansync(&["findings", "--format", "json", "--store", store])
            .stdout
    };
    assert!(read(back) == read(&url));
}
