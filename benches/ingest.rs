//! Store ingest benchmark: the SQLite floor (`limit`) against scansync's own write path
//! (`ingest`, `resync`). Run through `bench/run`, which adds the end-to-end measurement and
//! prints the summary JSON; `cargo bench --bench ingest -- --n N` runs this part alone.
//!
//! Plain Rust (no criterion): each phase is one long, I/O-bound run where a single
//! measurement of N rows says more than many samples of a tiny loop.

use rusqlite::{params_from_iter, Connection};
use scansync::finding::{Finding, Location, Severity};
use scansync::store::{RunEnd, RunScope, Store};
use std::time::Instant;

/// The simulator's default page size for CodeThreat issues.
const PAGE: usize = 500;

fn main() {
    let mut n: usize = 100_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--n" {
            n = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--n takes a number");
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let findings: Vec<Finding> = (0..n).map(synthetic).collect();

    let limit_s = limit(&dir.path().join("limit.db"), &findings);
    let store_path = dir.path().join("store.db");
    let mut store = Store::open(&store_path).expect("open store");
    let ingest_s = import(&mut store, &findings);
    let resync_s = import(&mut store, &findings);

    let rate = |s: f64| (n as f64 / s).round();
    eprintln!("limit   {limit_s:>8.3} s  {:>10} findings/s  (raw rusqlite, same columns, 1,000 rows per tx)", rate(limit_s));
    eprintln!(
        "ingest  {ingest_s:>8.3} s  {:>10} findings/s  ratio {:.2}",
        rate(ingest_s),
        ingest_s / limit_s
    );
    eprintln!(
        "resync  {resync_s:>8.3} s  {:>10} findings/s  ratio {:.2}",
        rate(resync_s),
        resync_s / limit_s
    );
    println!(
        "{}",
        serde_json::json!({
            "n": n,
            "limit_s": limit_s,
            "ingest_s": ingest_s,
            "resync_s": resync_s,
            "ingest_ratio": ingest_s / limit_s,
            "resync_ratio": resync_s / limit_s,
        })
    );
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
    }
}

/// Raw inserts into a table with the store's `findings` columns, its unique key and the
/// store's PRAGMAs: what this machine's SQLite can do at best.
fn limit(path: &std::path::Path, findings: &[Finding]) -> f64 {
    // Take the real column list from a store-created file, so the floor tracks the schema.
    let probe = path.with_extension("probe.db");
    drop(Store::open(&probe).expect("probe store"));
    let cols: Vec<String> = {
        let c = Connection::open(&probe).unwrap();
        let mut st = c
            .prepare("SELECT name FROM pragma_table_info('findings') WHERE name != 'id'")
            .unwrap();
        let names = st
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        names
    };
    let mut c = Connection::open(path).unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
        .unwrap();
    c.execute_batch(&format!(
        "CREATE TABLE findings (id INTEGER PRIMARY KEY, {}); CREATE UNIQUE INDEX f_key ON findings (scan_id, fingerprint);",
        cols.join(", ")
    ))
    .unwrap();
    let sql = format!(
        "INSERT INTO findings ({}) VALUES ({})",
        cols.join(", "),
        vec!["?"; cols.len()].join(", ")
    );
    let start = Instant::now();
    for chunk in findings.chunks(1000) {
        let tx = c.transaction().unwrap();
        {
            let mut st = tx.prepare_cached(&sql).unwrap();
            for (i, f) in chunk.iter().enumerate() {
                let values: Vec<rusqlite::types::Value> =
                    cols.iter().map(|col| column_value(col, f, i)).collect();
                st.execute(params_from_iter(values)).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    start.elapsed().as_secs_f64()
}

fn column_value(col: &str, f: &Finding, i: usize) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    let text = |s: &str| V::Text(s.to_string());
    let opt = |s: &Option<String>| s.clone().map(V::Text).unwrap_or(V::Null);
    match col {
        "scan_id" | "last_run_id" | "times_seen" => V::Integer(1),
        "fingerprint" => text(&f.fingerprint("codethreat", "project-1")),
        "state" => text("new"),
        "title" => text(&f.title),
        "severity" => text(f.severity.as_str()),
        "vendor_status" => opt(&f.vendor_status),
        "cwe" => opt(&f.cwe),
        "owasp" => opt(&f.owasp),
        "rule_id" => opt(&f.rule_id),
        "location_kind" => text("code"),
        "file_path" => match &f.location {
            Location::Code { path, .. } => text(path),
            _ => V::Null,
        },
        "start_line" | "end_line" => V::Integer(10 + (i % 500) as i64),
        "description" => opt(&f.description),
        "remediation" => opt(&f.remediation),
        "vendor_url" => opt(&f.vendor_url),
        "vendor_id" => opt(&f.vendor_id),
        "vendor_first_seen" => opt(&f.vendor_first_seen),
        "vendor_last_seen" => opt(&f.vendor_last_seen),
        "raw" => text(&f.raw),
        "first_seen" | "last_seen" => text("2026-11-23T10:00:00Z"),
        _ => V::Null,
    }
}

/// One complete run through the store's API, page by page, as sync.rs drives it.
fn import(store: &mut Store, findings: &[Finding]) -> f64 {
    let scope = RunScope {
        scan: "bench".into(),
        instance: "ct".into(),
        vendor: "codethreat".into(),
        bind_to: "project-1".into(),
        branch: Some("main".into()),
        trigger: "bench".into(),
    };
    let start = Instant::now();
    let run = store.begin_run(&scope).unwrap();
    for page in findings.chunks(PAGE) {
        store.upsert_page(run, page).unwrap();
    }
    store.finish_run(run, RunEnd::Succeeded).unwrap();
    start.elapsed().as_secs_f64()
}
