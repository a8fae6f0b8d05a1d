//! Store ingest benchmark: the SQLite floor (`limit`) against scansync's own write path
//! (`ingest`, `resync`). Run through `bench/run`, which adds the end-to-end measurement and
//! prints the summary JSON; `cargo bench --bench ingest -- --n N [--repeat R]` runs this part
//! alone. `--store postgres --pg-url URL` (or `$SCANSYNC_BENCH_POSTGRES`) does the same on a
//! PostgreSQL server against a PostgreSQL floor (`ingest/postgres.rs`).
//!
//! Plain Rust (no criterion): each phase is one long, I/O-bound run where a single
//! measurement of N rows says more than many samples of a tiny loop. With `--repeat R` the
//! three phases run R times on fresh files and the best time of each phase counts (on a
//! shared machine the best run is the one least disturbed by others).
//!
//! Besides wall time each phase reports the CPU time of this process (user + system, from
//! `/proc/self/schedstat`), which other processes on the machine disturb much less; the
//! `*_cpu_ratio` keys compare those.
//!
//! On PostgreSQL each round also measures the two phases paired with the floor page by page
//! (see [`paired_round`]): the `paired_*` keys.

use rusqlite::types::ToSql;
use rusqlite::Connection;
use scansync::finding::{Finding, Location, Severity};
use scansync::store::{RunEnd, RunScope, Store};
use std::path::Path;
use std::time::Instant;

#[path = "ingest/postgres.rs"]
mod pg;

/// The simulator's default page size for CodeThreat issues.
const PAGE: usize = 500;
/// The limit's transaction size, fixed by the issue.
const LIMIT_TX: usize = 1000;

fn main() {
    let mut n: usize = 100_000;
    let mut repeat: usize = 1;
    let mut on_postgres = false;
    let mut pg_url = std::env::var("SCANSYNC_BENCH_POSTGRES").ok();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} takes a value"));
        match a.as_str() {
            "--n" | "--repeat" => {
                let v: usize = value()
                    .replace('_', "")
                    .parse()
                    .unwrap_or_else(|_| panic!("{a} takes a number"));
                if a == "--n" {
                    n = v
                } else {
                    repeat = v.max(1)
                }
            }
            "--store" => match value().as_str() {
                "sqlite" => on_postgres = false,
                "postgres" => on_postgres = true,
                other => panic!("--store {other}: sqlite or postgres"),
            },
            "--pg-url" => pg_url = Some(value()),
            // `cargo bench` passes `--bench`; ignore anything else it adds.
            _ => {}
        }
    }
    let server = on_postgres.then(|| {
        pg::Server::new(pg_url.as_deref().unwrap_or_else(|| {
            panic!("--store postgres needs --pg-url URL or $SCANSYNC_BENCH_POSTGRES")
        }))
    });
    let findings: Vec<Finding> = (0..n).map(synthetic).collect();
    // The floor's values that are not the findings' fields, once for every round.
    let extras = if on_postgres {
        pg::extras(&findings)
    } else {
        Vec::new()
    };

    let mut best: Option<Phases> = None;
    let mut round_trip_us = Vec::new();
    // Each round's ratios against that round's own floor: on a machine whose speed moves
    // between rounds, their median says more than the best phase over the best floor.
    let mut round_ratios: (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    // PostgreSQL: each round's paired ratios (see [`paired_import`]), and the paired floors.
    let mut paired_ratios: (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let mut paired_floors: Vec<f64> = Vec::new();
    for round in 1..=repeat {
        let phases = match &server {
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let limit = limit(&dir.path().join("limit.db"), &findings);
                let mut store = Store::open(&dir.path().join("store.db")).expect("open store");
                let ingest = import(&mut store, &findings, None);
                let resync = import(&mut store, &findings, None);
                Phases {
                    floors: vec![(SQLITE_FLOOR, limit)],
                    references: Vec::new(),
                    ingest,
                    resync,
                }
            }
            Some(server) => {
                let db = server.fresh(&round.to_string());
                let mut store = pg::open_store(&db);
                let floors = pg::floors(&db, &findings, &extras, PAGE);
                let mut c = db.connect();
                round_trip_us.push(pg::round_trip_us(&mut c));
                let pid = pg::store_backend_pid(&mut c);
                pg::checkpoint(&mut c);
                let ingest = import(&mut store, &findings, pid);
                pg::checkpoint(&mut c);
                let resync = import(&mut store, &findings, pid);
                drop((store, c, db));
                let paired = paired_round(server, &round.to_string(), &findings, &extras);
                eprintln!(
                    "round {round}/{repeat} paired: floor {:.3} s beside ingest {:.3} s ({:.2}), \
                     floor {:.3} s beside resync {:.3} s ({:.2})",
                    paired.0.floor,
                    paired.0.store,
                    paired.0.ratio(),
                    paired.1.floor,
                    paired.1.store,
                    paired.1.ratio()
                );
                paired_ratios.0.push(paired.0.ratio());
                paired_ratios.1.push(paired.1.ratio());
                paired_floors.extend([paired.0.floor, paired.1.floor]);
                Phases {
                    floors: vec![
                        (PG_FLOOR_MULTI, floors.multi),
                        (PG_FLOOR_PER_ROW, floors.per_row),
                    ],
                    references: vec![(PG_CONSTRAINED, floors.constrained)],
                    ingest,
                    resync,
                }
            }
        };
        let limit = phases.limit().1;
        round_ratios.0.push(phases.ingest.total.wall / limit.wall);
        round_ratios.1.push(phases.resync.total.wall / limit.wall);
        if repeat > 1 {
            eprintln!(
                "round {round}/{repeat}: limit {:.3} s, ingest {:.3} s ({:.2}), resync {:.3} s ({:.2})",
                limit.wall,
                phases.ingest.total.wall,
                phases.ingest.total.wall / limit.wall,
                phases.resync.total.wall,
                phases.resync.total.wall / limit.wall
            );
        }
        best = Some(match best {
            None => phases,
            Some(b) => b.best_of(phases),
        });
    }
    let best = best.expect("at least one round");
    let (floor, limit) = best.limit();
    let Phases {
        floors,
        references,
        ingest,
        resync,
    } = best;

    let rate = |s: f64| (n as f64 / s).round();
    for (name, t) in &floors {
        eprintln!(
            "limit   {:>8.3} s  {:>10} findings/s  cpu {:>7.3} s{}  ({name}{})",
            t.wall,
            rate(t.wall),
            t.cpu,
            server_cpu(t),
            if *name == floor { ", the floor" } else { "" }
        );
    }
    for (name, t) in &references {
        eprintln!(
            "        {:>8.3} s  {:>10} findings/s  cpu {:>7.3} s{}  ({name}; a reference, not a floor)",
            t.wall,
            rate(t.wall),
            t.cpu,
            server_cpu(t),
        );
    }
    for (name, p) in [("ingest", &ingest), ("resync", &resync)] {
        eprintln!(
            "{name}  {:>8.3} s  {:>10} findings/s  cpu {:>7.3} s{}  ratio {:.2} (cpu {:.2}); pages {:.3} s, finish_run {:.3} s",
            p.total.wall,
            rate(p.total.wall),
            p.total.cpu,
            server_cpu(&p.total),
            p.total.wall / limit.wall,
            p.total.all_cpu() / limit.all_cpu(),
            p.total.wall - p.finish.wall,
            p.finish.wall
        );
    }
    if repeat > 1 {
        eprintln!(
            "median of the rounds' own ratios: ingest {:.2}, resync {:.2}",
            median(&mut round_ratios.0.clone()),
            median(&mut round_ratios.1.clone())
        );
    }
    if server.is_some() {
        eprintln!(
            "paired (each floor page beside the same store page), median of the rounds: \
             ingest {:.2}, resync {:.2}; the paired floors' median {:.3} s",
            median(&mut paired_ratios.0.clone()),
            median(&mut paired_ratios.1.clone()),
            median(&mut paired_floors.clone())
        );
    }
    let mut summary = serde_json::json!({
        "n": n,
        "repeat": repeat,
        "store": if server.is_some() { "postgres" } else { "sqlite" },
        "floor": floor,
        "limit_s": limit.wall,
        "ingest_s": ingest.total.wall,
        "resync_s": resync.total.wall,
        "ingest_ratio": ingest.total.wall / limit.wall,
        "resync_ratio": resync.total.wall / limit.wall,
        "limit_cpu_s": limit.cpu,
        "ingest_cpu_s": ingest.total.cpu,
        "resync_cpu_s": resync.total.cpu,
        "ingest_cpu_ratio": ingest.total.all_cpu() / limit.all_cpu(),
        "resync_cpu_ratio": resync.total.all_cpu() / limit.all_cpu(),
        "ingest_finish_s": ingest.finish.wall,
        "resync_finish_s": resync.finish.wall,
        "ingest_round_ratios": rounded(&round_ratios.0),
        "resync_round_ratios": rounded(&round_ratios.1),
        "ingest_ratio_median": median(&mut round_ratios.0),
        "resync_ratio_median": median(&mut round_ratios.1),
    });
    if let Some(server) = &server {
        let extra = serde_json::json!({
            "floor_multirow_s": floors[0].1.wall,
            "floor_per_row_s": floors[1].1.wall,
            "constrained_s": references[0].1.wall,
            "constrained_server_cpu_s": references[0].1.server,
            "limit_server_cpu_s": limit.server,
            "ingest_server_cpu_s": ingest.total.server,
            "resync_server_cpu_s": resync.total.server,
            "pg_round_trip_us": median(&mut round_trip_us),
            "paired_ingest_ratios": rounded(&paired_ratios.0),
            "paired_resync_ratios": rounded(&paired_ratios.1),
            "paired_ingest_ratio_median": median(&mut paired_ratios.0),
            "paired_resync_ratio_median": median(&mut paired_ratios.1),
            "paired_floor_median_s": median(&mut paired_floors),
            "pg_settings": server
                .settings()
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect::<serde_json::Map<_, _>>(),
        });
        summary
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        eprintln!(
            "round trip (prepared SELECT 1) {:.0} µs; server {}",
            median(&mut round_trip_us),
            summary["pg_settings"]
        );
    }
    println!("{summary}");
}

const SQLITE_FLOOR: &str = "raw rusqlite, prepared per row, 1000 rows per tx";
const PG_FLOOR_MULTI: &str = "multi-row INSERT per page";
const PG_FLOOR_PER_ROW: &str = "prepared INSERT per row";
const PG_CONSTRAINED: &str = "multi-row INSERT per page with the store's CHECKs and foreign keys";

/// `v` to three decimals, for the summary line.
fn rounded(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| (x * 1000.0).round() / 1000.0).collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `, server cpu X s` when a server process was measured.
fn server_cpu(t: &Timing) -> String {
    if t.server > 0.0 {
        format!(" + server {:>7.3} s", t.server)
    } else {
        String::new()
    }
}

/// Wall and CPU seconds of one measured stretch: this process's CPU and, on PostgreSQL, the
/// CPU of the server process serving it (0 where not measured).
#[derive(Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: f64,
    server: f64,
}

impl Timing {
    fn all_cpu(&self) -> f64 {
        self.cpu + self.server
    }
}

/// Starts a measurement; `.stop()` ends it.
struct Stopwatch {
    wall: Instant,
    cpu: f64,
    server: Option<(i32, f64)>,
}

impl Stopwatch {
    /// `server`: the pid of a (local) server process whose CPU time counts too.
    fn start(server: Option<i32>) -> Stopwatch {
        Stopwatch {
            server: server.and_then(|pid| Some((pid, process_cpu_seconds(pid)?))),
            wall: Instant::now(),
            cpu: cpu_seconds(),
        }
    }

    fn stop(&self) -> Timing {
        let wall = self.wall.elapsed().as_secs_f64();
        Timing {
            wall,
            cpu: cpu_seconds() - self.cpu,
            server: self
                .server
                .and_then(|(pid, before)| Some(process_cpu_seconds(pid)? - before))
                .unwrap_or(0.0),
        }
    }
}

/// utime + stime of another process on this machine (`/proc/PID/stat`), in seconds.
fn process_cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // The kernel's USER_HZ, 100 on every Linux this runs on.
    Some(ticks / 100.0)
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
    /// The floor, measured one or more ways (name, timing); the fastest is the limit.
    floors: Vec<(&'static str, Timing)>,
    /// Other timings reported beside the floor (name, timing), never the limit.
    references: Vec<(&'static str, Timing)>,
    ingest: Import,
    resync: Import,
}

impl Phases {
    /// Each phase's best (lowest wall time) of two rounds.
    fn best_of(self, other: Phases) -> Phases {
        let pick_t = |a: Timing, b: Timing| if b.wall < a.wall { b } else { a };
        let pick_i = |a: Import, b: Import| if b.total.wall < a.total.wall { b } else { a };
        let pick_all = |a: Vec<(&'static str, Timing)>, b: Vec<(&'static str, Timing)>| {
            a.into_iter()
                .zip(b)
                .map(|((name, a), (_, b))| (name, pick_t(a, b)))
                .collect()
        };
        Phases {
            floors: pick_all(self.floors, other.floors),
            references: pick_all(self.references, other.references),
            ingest: pick_i(self.ingest, other.ingest),
            resync: pick_i(self.resync, other.resync),
        }
    }

    /// The fastest floor: its name and timing.
    fn limit(&self) -> (&'static str, Timing) {
        *self
            .floors
            .iter()
            .min_by(|a, b| a.1.wall.total_cmp(&b.1.wall))
            .expect("a floor")
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
    let watch = Stopwatch::start(None);
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
    /// `fingerprint_version` (written on PostgreSQL, where it is NOT NULL).
    Recipe,
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
        Column::Recipe => &scansync::finding::FINGERPRINT_RECIPE,
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

/// Seconds of the store's pages and of the floor's same pages, written alternately.
struct Paired {
    store: f64,
    floor: f64,
}

impl Paired {
    fn ratio(&self) -> f64 {
        self.store / self.floor
    }
}

/// The paired measurement of one round, in a database of its own: the ingest, then the
/// re-sync, of [`import`], each page of it written just after the floor's same page (a
/// multi-row INSERT into a fresh table of the findings' shape, as the floor). On a machine
/// whose speed moves from one second to the next, phases measured seconds apart pair a fast
/// stretch with a slow one; page by page, the store and the floor meet the same machine.
/// The floor's pages then share the server with the store's (its buffers and its WAL): the
/// paired floors' time is reported beside the floor measured alone, to show what that
/// changes.
fn paired_round(
    server: &pg::Server,
    round: &str,
    findings: &[Finding],
    extras: &[pg::Extra],
) -> (Paired, Paired) {
    let db = server.fresh(&format!("{round}_paired"));
    let mut store = pg::open_store(&db);
    pg::floor_tables(&db, &["paired_ingest", "paired_resync"]);
    let mut c = db.connect();
    let mut phase = |table: &str| {
        let floor = pg::FloorPages::new(&db, table, findings, extras, PAGE);
        pg::checkpoint(&mut c);
        paired_import(&mut store, findings, floor)
    };
    let ingest = phase("paired_ingest");
    let resync = phase("paired_resync");
    (ingest, resync)
}

/// [`import`], each page just after the floor's same page; the two sums of wall time.
fn paired_import(store: &mut Store, findings: &[Finding], mut floor: pg::FloorPages) -> Paired {
    let scope = bench_scope();
    let mut paired = Paired {
        store: 0.0,
        floor: 0.0,
    };
    let t = Instant::now();
    let run = store.begin_run(&scope).unwrap();
    paired.store += t.elapsed().as_secs_f64();
    for (i, page) in findings.chunks(PAGE).enumerate() {
        let t = Instant::now();
        floor.write(i);
        paired.floor += t.elapsed().as_secs_f64();
        let t = Instant::now();
        store.upsert_page(run, page).unwrap();
        paired.store += t.elapsed().as_secs_f64();
    }
    let t = Instant::now();
    store.finish_run(run, RunEnd::Succeeded).unwrap();
    paired.store += t.elapsed().as_secs_f64();
    paired
}

/// The scope of every benchmark run.
fn bench_scope() -> RunScope {
    RunScope {
        scan: "bench".into(),
        instance: "ct".into(),
        vendor: "codethreat".into(),
        bind_to: "project-1".into(),
        branch: Some("main".into()),
        trigger: "bench".into(),
        ..RunScope::default()
    }
}

/// One complete run through the store's API, page by page, as sync.rs drives it. `server`:
/// the store's server process on PostgreSQL (its CPU time counts too).
fn import(store: &mut Store, findings: &[Finding], server: Option<i32>) -> Import {
    let scope = bench_scope();
    let watch = Stopwatch::start(server);
    let run = store.begin_run(&scope).unwrap();
    for page in findings.chunks(PAGE) {
        store.upsert_page(run, page).unwrap();
    }
    let finish = Stopwatch::start(server);
    store.finish_run(run, RunEnd::Succeeded).unwrap();
    Import {
        finish: finish.stop(),
        total: watch.stop(),
    }
}
