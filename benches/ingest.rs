//! Store ingest benchmark: the SQLite floor (`limit`) against scansync's own write path
//! (`ingest`, `resync`). Run through `bench/run`, which adds the end-to-end measurement and
//! prints the summary JSON; `cargo bench --bench ingest -- --n N [--repeat R]` runs this part
//! alone.
//!
//! Plain Rust (no criterion): each phase is one long, I/O-bound run where a single
//! measurement of N rows says more than many samples of a tiny loop. With `--repeat R` the
//! three phases run R times on fresh files and the best time of each phase counts (on a
//! shared machine the best run is the one least disturbed by others).
//!
//! Besides wall time each phase reports the CPU time of this process (user + system, from
//! `/proc/self/schedstat`), which other processes on the machine disturb much less; the
//! `*_cpu_ratio` keys compare those.

use rusqlite::types::ToSql;
use rusqlite::Connection;
use scansync::finding::{Finding, Location, Severity};
use scansync::store::{RunEnd, RunScope, Store};
use std::path::Path;
use std::time::Instant;

/// The simulator's default page size for CodeThreat issues.
const PAGE: usize = 500;
/// The limit's transaction size, fixed by the issue.
const LIMIT_TX: usize = 1000;

fn main() {
    let mut n: usize = 100_000;
    let mut repeat: usize = 1;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut number = || {
            args.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| panic!("{a} takes a number"))
        };
        match a.as_str() {
            "--n" => n = number(),
            "--repeat" => repeat = number().max(1),
            // `cargo bench` passes `--bench`; ignore anything else it adds.
            _ => {}
        }
    }
    let findings: Vec<Finding> = (0..n).map(synthetic).collect();

    let mut best: Option<Phases> = None;
    for round in 1..=repeat {
        let dir = tempfile::tempdir().expect("temp dir");
        let limit = limit(&dir.path().join("limit.db"), &findings);
        let mut store = Store::open(&dir.path().join("store.db")).expect("open store");
        let ingest = import(&mut store, &findings);
        let resync = import(&mut store, &findings);
        drop(store);
        let phases = Phases {
            limit,
            ingest,
            resync,
        };
        if repeat > 1 {
            eprintln!(
                "round {round}/{repeat}: limit {:.3} s, ingest {:.3} s ({:.2}), resync {:.3} s ({:.2})",
                phases.limit.wall,
                phases.ingest.total.wall,
                phases.ingest.total.wall / phases.limit.wall,
                phases.resync.total.wall,
                phases.resync.total.wall / phases.limit.wall
            );
        }
        best = Some(match best {
            None => phases,
            Some(b) => b.best_of(phases),
        });
    }
    let Phases {
        limit,
        ingest,
        resync,
    } = best.expect("at least one round");

    let rate = |s: f64| (n as f64 / s).round();
    eprintln!(
        "limit   {:>8.3} s  {:>10} findings/s  cpu {:>7.3} s  (raw rusqlite, same columns, {LIMIT_TX} rows per tx)",
        limit.wall,
        rate(limit.wall),
        limit.cpu
    );
    for (name, p) in [("ingest", &ingest), ("resync", &resync)] {
        eprintln!(
            "{name}  {:>8.3} s  {:>10} findings/s  cpu {:>7.3} s  ratio {:.2} (cpu {:.2}); pages {:.3} s, finish_run {:.3} s",
            p.total.wall,
            rate(p.total.wall),
            p.total.cpu,
            p.total.wall / limit.wall,
            p.total.cpu / limit.cpu,
            p.total.wall - p.finish.wall,
            p.finish.wall
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "n": n,
            "repeat": repeat,
            "limit_s": limit.wall,
            "ingest_s": ingest.total.wall,
            "resync_s": resync.total.wall,
            "ingest_ratio": ingest.total.wall / limit.wall,
            "resync_ratio": resync.total.wall / limit.wall,
            "limit_cpu_s": limit.cpu,
            "ingest_cpu_s": ingest.total.cpu,
            "resync_cpu_s": resync.total.cpu,
            "ingest_cpu_ratio": ingest.total.cpu / limit.cpu,
            "resync_cpu_ratio": resync.total.cpu / limit.cpu,
            "ingest_finish_s": ingest.finish.wall,
            "resync_finish_s": resync.finish.wall,
        })
    );
}

/// Wall and CPU seconds of one measured stretch.
#[derive(Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: f64,
}

/// Starts a measurement; `.stop()` ends it.
struct Stopwatch {
    wall: Instant,
    cpu: f64,
}

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch {
            wall: Instant::now(),
            cpu: cpu_seconds(),
        }
    }

    fn stop(&self) -> Timing {
        Timing {
            wall: self.wall.elapsed().as_secs_f64(),
            cpu: cpu_seconds() - self.cpu,
        }
    }
}

/// CPU time this (single-threaded) process has run, from the first field of
/// `/proc/self/schedstat` (nanoseconds); 0 where that file does not exist.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

/// One import through the store: the whole run, and its `finish_run` alone.
#[derive(Clone, Copy)]
struct Import {
    total: Timing,
    finish: Timing,
}

struct Phases {
    limit: Timing,
    ingest: Import,
    resync: Import,
}

impl Phases {
    /// Each phase's best (lowest wall time) of two rounds.
    fn best_of(self, other: Phases) -> Phases {
        let pick_t = |a: Timing, b: Timing| if b.wall < a.wall { b } else { a };
        let pick_i = |a: Import, b: Import| if b.total.wall < a.total.wall { b } else { a };
        Phases {
            limit: pick_t(self.limit, other.limit),
            ingest: pick_i(self.ingest, other.ingest),
            resync: pick_i(self.resync, other.resync),
        }
    }
}

/// A code finding of realistic width (the simulator's shape), distinct per index.
fn synthetic(i: usize) -> Finding {
    let rules = ["sql_injection", "xss", "path_traversal", "hardcoded_secret"];
    let rule = rules[i % rules.len()];
    let raw = format!(
        r#"{{"_id":"{i:024x}","issue_state":{{"weakness_id":"{rule}","severity":"high","status":"Open","location":{{"file_path":"src/module_{m}/file_{f}.rs","start_line":{l},"end_line":{e}}}}},"kb_fields":{{"title":{{"en":"Finding {i} of kind {rule}"}},"cwe":89,"owasp2021":"A03:2021"}}}}"#,
        m = i % 97,
        f = i % 1013,
        l = 10 + i % 500,
        e = 12 + i % 500
    );
    Finding {
        vendor_id: Some(format!("{i:024x}")),
        title: format!("Finding {i} of kind {rule}"),
        severity: Severity::ALL[i % 5],
        vendor_status: Some("Open".into()),
        cwe: Some("CWE-89".into()),
        owasp: Some("A03:2021".into()),
        rule_id: Some(rule.into()),
        location: Location::Code {
            path: format!("src/module_{}/file_{}.rs", i % 97, i % 1013),
            start_line: Some(10 + (i % 500) as u32),
            end_line: Some(12 + (i % 500) as u32),
        },
        description: Some("User input reaches a SQL query without parameterisation.".into()),
        remediation: Some("Use prepared statements with bound parameters.".into()),
        vendor_url: Some(format!(
            "https://ct.example/issues?scan_id=s&projectName=p#{i}"
        )),
        vendor_first_seen: Some("2026-11-01T10:00:00Z".into()),
        vendor_last_seen: Some("2026-11-22T08:00:00Z".into()),
        raw,
        verdict: None,
    }
}

/// Raw inserts into a table with the store's `findings` columns, its unique key and the
/// store's PRAGMAs: what this machine's SQLite can do at best.
///
/// The floor does nothing but SQLite's work inside the timed loop: fingerprints are computed
/// beforehand and every value is bound by reference straight from the finding (SQLite copies
/// it, as it does for the store). Column names, their order and declared types come from a
/// store-created file, so the floor follows the schema; constraints, triggers and other
/// tables are deliberately absent (they are scansync's cost, not the floor's).
fn limit(path: &Path, findings: &[Finding]) -> Timing {
    let probe = path.with_extension("probe.db");
    drop(Store::open(&probe).expect("probe store"));
    // (name, declared type) of every column but the id.
    let cols: Vec<(String, String)> = {
        let c = Connection::open(&probe).unwrap();
        let mut st = c
            .prepare("SELECT name, type FROM pragma_table_info('findings') WHERE name != 'id'")
            .unwrap();
        let cols = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        cols
    };
    let pragmas = Store::open(&probe).unwrap().write_pragmas().unwrap();
    let fingerprints: Vec<String> = findings.iter().map(|f| f.fingerprint(0)).collect();
    let mut c = Connection::open(path).unwrap();
    let (page_size, rest) = pragmas.split_first().expect("page_size comes first");
    c.pragma_update(None, &page_size.0, page_size.1).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    for (name, value) in rest {
        c.pragma_update(None, name, value).unwrap();
    }
    let defs: Vec<String> = cols.iter().map(|(n, t)| format!("{n} {t}")).collect();
    let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    let columns: Vec<Column> = names.iter().map(|n| Column::named(n)).collect();
    c.execute_batch(&format!(
        "CREATE TABLE findings (id INTEGER PRIMARY KEY, {});
         CREATE UNIQUE INDEX f_key ON findings (scan_id, fingerprint);",
        defs.join(", ")
    ))
    .unwrap();
    let sql = format!(
        "INSERT INTO findings ({}) VALUES ({})",
        names.join(", "),
        vec!["?"; names.len()].join(", ")
    );
    let at = "2026-11-23T10:00:00.000Z";
    let watch = Stopwatch::start();
    for (chunk, fps) in findings.chunks(LIMIT_TX).zip(fingerprints.chunks(LIMIT_TX)) {
        let tx = c.transaction().unwrap();
        {
            let mut st = tx.prepare_cached(&sql).unwrap();
            for (f, fp) in chunk.iter().zip(fps) {
                for (i, column) in columns.iter().enumerate() {
                    bind_column(&mut st, i + 1, *column, f, fp, at);
                }
                st.raw_execute().unwrap();
            }
        }
        tx.commit().unwrap();
    }
    watch.stop()
}

/// What goes into one column of the floor's row (resolved from the column name once, so
/// the timed loop does no string matching).
#[derive(Clone, Copy)]
enum Column {
    One,
    Fingerprint,
    State,
    Title,
    Severity,
    VendorStatus,
    Cwe,
    Owasp,
    RuleId,
    LocationKind,
    FilePath,
    StartLine,
    EndLine,
    Description,
    Remediation,
    VendorUrl,
    VendorId,
    VendorFirstSeen,
    VendorLastSeen,
    Raw,
    Now,
    Null,
}

impl Column {
    fn named(name: &str) -> Column {
        match name {
            "scan_id" | "last_run_id" | "times_seen" => Column::One,
            "fingerprint" => Column::Fingerprint,
            "state" => Column::State,
            "title" => Column::Title,
            "severity" => Column::Severity,
            "vendor_status" => Column::VendorStatus,
            "cwe" => Column::Cwe,
            "owasp" => Column::Owasp,
            "rule_id" => Column::RuleId,
            "location_kind" => Column::LocationKind,
            "file_path" => Column::FilePath,
            "start_line" => Column::StartLine,
            "end_line" => Column::EndLine,
            "description" => Column::Description,
            "remediation" => Column::Remediation,
            "vendor_url" => Column::VendorUrl,
            "vendor_id" => Column::VendorId,
            "vendor_first_seen" => Column::VendorFirstSeen,
            "vendor_last_seen" => Column::VendorLastSeen,
            "raw" => Column::Raw,
            "first_seen" | "last_seen" => Column::Now,
            _ => Column::Null,
        }
    }
}

/// Binds one column of the floor's row by reference.
fn bind_column(
    st: &mut rusqlite::Statement<'_>,
    i: usize,
    column: Column,
    f: &Finding,
    fingerprint: &str,
    at: &str,
) {
    let (path, start, end) = match &f.location {
        Location::Code {
            path,
            start_line,
            end_line,
        } => (Some(path.as_str()), *start_line, *end_line),
        _ => (None, None, None),
    };
    let none: Option<&str> = None;
    let value: &dyn ToSql = match column {
        Column::One => &1,
        Column::Fingerprint => &fingerprint,
        Column::State => &"new",
        Column::Title => &f.title,
        Column::Severity => &f.severity.as_str(),
        Column::VendorStatus => &f.vendor_status,
        Column::Cwe => &f.cwe,
        Column::Owasp => &f.owasp,
        Column::RuleId => &f.rule_id,
        Column::LocationKind => &"code",
        Column::FilePath => &path,
        Column::StartLine => &start,
        Column::EndLine => &end,
        Column::Description => &f.description,
        Column::Remediation => &f.remediation,
        Column::VendorUrl => &f.vendor_url,
        Column::VendorId => &f.vendor_id,
        Column::VendorFirstSeen => &f.vendor_first_seen,
        Column::VendorLastSeen => &f.vendor_last_seen,
        Column::Raw => &f.raw,
        Column::Now => &at,
        Column::Null => &none,
    };
    st.raw_bind_parameter(i, value).unwrap();
}

/// One complete run through the store's API, page by page, as sync.rs drives it.
fn import(store: &mut Store, findings: &[Finding]) -> Import {
    let scope = RunScope {
        scan: "bench".into(),
        instance: "ct".into(),
        vendor: "codethreat".into(),
        bind_to: "project-1".into(),
        branch: Some("main".into()),
        trigger: "bench".into(),
        ..RunScope::default()
    };
    let watch = Stopwatch::start();
    let run = store.begin_run(&scope).unwrap();
    for page in findings.chunks(PAGE) {
        store.upsert_page(run, page).unwrap();
    }
    let finish = Stopwatch::start();
    store.finish_run(run, RunEnd::Succeeded).unwrap();
    Import {
        finish: finish.stop(),
        total: watch.stop(),
    }
}
