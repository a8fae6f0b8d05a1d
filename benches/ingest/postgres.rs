//! The PostgreSQL half of the ingest benchmark (`--store postgres`): a fresh database per
//! round on the server the url names (dropped afterwards), the store opened there through
//! `Store::open_at` (the code path the daemon uses), and the floor: plain batched INSERTs of
//! the same rows into a table of the same shape, one transaction per page of the same size.
//!
//! The floor is measured two ways and the faster counts: one multi-row `INSERT … VALUES
//! (…), (…)` per page (one round trip per page), and a prepared single-row `INSERT` executed
//! once per row (one round trip per row, as the store's upsert). The table is
//! `CREATE TABLE … (LIKE findings INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES)`
//! of the store-created `findings`: the same columns, types, collations, NOT NULLs, identity
//! and the primary and (scan, fingerprint) unique indexes; no CHECKs, foreign keys or
//! triggers (scansync's cost, not the floor's), as the SQLite floor. Values are bound in the
//! driver's binary format with their column's type (what a plain client does; the store
//! binds text and lets the server parse it), fingerprints computed before the clock starts.
//!
//! Besides the wall and this process's CPU time, each phase reports the CPU time of the
//! server process serving its connection (`/proc/PID/stat` of the backend, when the server
//! runs on this machine).

use super::{Column, Stopwatch, Timing};
use ::postgres::types::ToSql;
use ::postgres::{Client, NoTls};
use scansync::config::{PgTarget, StoreLocation};
use scansync::finding::{Finding, Location};
use scansync::secret::Secret;
use scansync::store::Store;

/// The server given by `--pg-url` / `$SCANSYNC_BENCH_POSTGRES`.
pub struct Server {
    /// The url as given (its password included), to create and drop databases.
    admin: String,
}

impl Server {
    pub fn new(url: &str) -> Server {
        let parsed = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("--pg-url: {e}"));
        assert!(
            matches!(parsed.scheme(), "postgres" | "postgresql"),
            "--pg-url: not a postgres:// url"
        );
        Server {
            admin: url.to_owned(),
        }
    }

    /// The server's settings that shape write speed, for the report.
    pub fn settings(&self) -> Vec<(String, String)> {
        let mut c = connect(&self.admin);
        [
            "server_version",
            "synchronous_commit",
            "fsync",
            "wal_level",
            "shared_buffers",
            "max_wal_size",
        ]
        .iter()
        .map(|s| {
            let v: String = c.query_one(&format!("SHOW {s}"), &[]).unwrap().get(0);
            (s.to_string(), v)
        })
        .collect()
    }

    /// A new empty database, dropped with the value.
    pub fn fresh(&self, tag: &str) -> Database {
        let name = format!("scansync_bench_{}_{tag}", std::process::id());
        let mut url = reqwest::Url::parse(&self.admin).unwrap();
        let password = url.password().map(str::to_owned);
        url.set_path(&format!("/{name}"));
        let with_password = url.to_string();
        url.set_password(None).unwrap();
        let db = Database {
            admin: self.admin.clone(),
            name,
            url: url.to_string(),
            with_password,
            password,
        };
        let mut c = connect(&self.admin);
        // Two calls: a multi-statement string runs as one transaction, which neither allows.
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name))
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {}", db.name))
            .unwrap();
        db
    }
}

fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap_or_else(|e| panic!("cannot connect to the server: {e}"))
}

/// One round's database.
pub struct Database {
    admin: String,
    name: String,
    /// Without the password, as a config holds it.
    url: String,
    with_password: String,
    password: Option<String>,
}

impl Database {
    /// Where the store is, as `[store] url` + `password_env` would give it.
    pub fn location(&self) -> StoreLocation {
        StoreLocation::Postgres(PgTarget {
            url: self.url.clone(),
            password: self.password.clone().map(Secret::new),
            ca_file: None,
            schema: None,
        })
    }

    pub fn connect(&self) -> Client {
        connect(&self.with_password)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect(&self.admin, NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The server process of a connection (`pg_backend_pid()` seen from it).
pub fn backend_pid(c: &mut Client) -> i32 {
    c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0)
}

/// The server process of the store's connection: the database's other `scansync` session.
pub fn store_backend_pid(c: &mut Client) -> Option<i32> {
    c.query_opt(
        "SELECT pid FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()
            AND application_name = 'scansync'",
        &[],
    )
    .unwrap()
    .map(|r| r.get(0))
}

/// A checkpoint before each timed phase, so none of them pays for the previous one's dirty
/// buffers (and each starts with the same full-page-write state).
pub fn checkpoint(c: &mut Client) {
    c.batch_execute("CHECKPOINT").unwrap();
}

/// Microseconds per round trip of a prepared `SELECT 1` (the median of 5 batches of 400).
pub fn round_trip_us(c: &mut Client) -> f64 {
    let st = c.prepare("SELECT 1").unwrap();
    let mut batches: Vec<f64> = (0..5)
        .map(|_| {
            let t = std::time::Instant::now();
            for _ in 0..400 {
                c.query_one(&st, &[]).unwrap();
            }
            t.elapsed().as_secs_f64() * 1e6 / 400.0
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[2]
}

/// The values of one row that are not fields of the finding, computed before the clock.
pub struct Extra {
    fingerprint: String,
    severity: &'static str,
    file_path: Option<String>,
    start_line: Option<i64>,
    end_line: Option<i64>,
}

static ONE: i64 = 1;
static RECIPE: i64 = scansync::finding::FINGERPRINT_RECIPE;
static NEW: &str = "new";
static CODE: &str = "code";
static AT: &str = "2026-11-23T10:00:00.000Z";

/// The columns the floor writes: every column of the store's `findings` that the store's
/// upsert gives a value for a new finding, by name (the others keep their default or NULL,
/// as they do in the store).
fn floor_columns(c: &mut Client) -> Vec<(String, Column)> {
    c.query(
        "SELECT column_name::text FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name = 'findings'
            AND column_name <> 'id'
          ORDER BY ordinal_position",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| {
        let name: String = r.get(0);
        let column = match name.as_str() {
            "touched_run_id" => Column::One,
            "fingerprint_version" => Column::Recipe,
            other => Column::named(other),
        };
        (name, column)
    })
    .filter(|(_, c)| !matches!(c, Column::Null))
    .collect()
}

fn value<'a>(column: Column, f: &'a Finding, x: &'a Extra) -> &'a (dyn ToSql + Sync) {
    match column {
        Column::One => &ONE,
        Column::Recipe => &RECIPE,
        Column::Fingerprint => &x.fingerprint,
        Column::State => &NEW,
        Column::Title => &f.title,
        Column::Severity => &x.severity,
        Column::VendorStatus => &f.vendor_status,
        Column::Cwe => &f.cwe,
        Column::Owasp => &f.owasp,
        Column::RuleId => &f.rule_id,
        Column::LocationKind => &CODE,
        Column::FilePath => &x.file_path,
        Column::StartLine => &x.start_line,
        Column::EndLine => &x.end_line,
        Column::Description => &f.description,
        Column::Remediation => &f.remediation,
        Column::VendorUrl => &f.vendor_url,
        Column::VendorId => &f.vendor_id,
        Column::VendorFirstSeen => &f.vendor_first_seen,
        Column::VendorLastSeen => &f.vendor_last_seen,
        Column::Raw => &f.raw,
        Column::Now => &AT,
        Column::Null => unreachable!("not written"),
    }
}

/// What [`floors`] measured.
pub struct Floors {
    /// One multi-row INSERT per page.
    pub multi: Timing,
    /// A prepared single-row INSERT per finding.
    pub per_row: Timing,
    /// Not a floor, a reference: the multi-row way into a table that also has the store's
    /// CHECK constraints and its two foreign keys on `findings` (to one-row stand-ins for
    /// `scans` and `sync_runs`), to tell what the schema's checks cost from what the store's
    /// code does.
    pub constrained: Timing,
}

/// The values of each finding that are not its fields (computed before any clock).
pub fn extras(findings: &[Finding]) -> Vec<Extra> {
    findings
        .iter()
        .map(|f| {
            let (file_path, start_line, end_line) = match &f.location {
                Location::Code {
                    path,
                    start_line,
                    end_line,
                } => (
                    Some(path.clone()),
                    start_line.map(i64::from),
                    end_line.map(i64::from),
                ),
                _ => (None, None, None),
            };
            Extra {
                fingerprint: f.fingerprint(0),
                severity: f.severity.as_str(),
                file_path,
                start_line,
                end_line,
            }
        })
        .collect()
}

/// `INSERT INTO floor.<table> (…) VALUES (…), (…)` for `rows` rows.
fn insert_sql(table: &str, names: &[String], rows: usize) -> String {
    let k = names.len();
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let ps: Vec<String> = (1..=k).map(|i| format!("${}", r * k + i)).collect();
            format!("({})", ps.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO floor.{table} ({}) VALUES {}",
        names.join(", "),
        tuples.join(", ")
    )
}

/// The floor's multi-row way into one table of `floor`, a page at a time: one `INSERT …
/// VALUES (…), (…)` per page (a shorter last page has its own statement), in a transaction
/// of its own, on a connection of its own.
pub struct FloorPages<'a> {
    c: Client,
    pid: i32,
    columns: Vec<(String, Column)>,
    full: ::postgres::Statement,
    last: Option<::postgres::Statement>,
    findings: &'a [Finding],
    extras: &'a [Extra],
    page: usize,
}

impl<'a> FloorPages<'a> {
    /// Into `floor.<table>`, which exists.
    pub fn new(
        db: &Database,
        table: &str,
        findings: &'a [Finding],
        extras: &'a [Extra],
        page: usize,
    ) -> FloorPages<'a> {
        let mut c = db.connect();
        let columns = floor_columns(&mut c);
        let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
        let full = c.prepare(&insert_sql(table, &names, page)).unwrap();
        let rest = findings.len() % page;
        let last = (rest > 0).then(|| c.prepare(&insert_sql(table, &names, rest)).unwrap());
        let pid = backend_pid(&mut c);
        FloorPages {
            c,
            pid,
            columns,
            full,
            last,
            findings,
            extras,
            page,
        }
    }

    pub fn pages(&self) -> usize {
        self.findings.len().div_ceil(self.page)
    }

    /// Writes page `i` (of [`FloorPages::pages`]).
    pub fn write(&mut self, i: usize) {
        let range = i * self.page..((i + 1) * self.page).min(self.findings.len());
        let columns = &self.columns;
        let params: Vec<&(dyn ToSql + Sync)> = self.findings[range.clone()]
            .iter()
            .zip(&self.extras[range.clone()])
            .flat_map(|(f, x)| columns.iter().map(move |(_, col)| value(*col, f, x)))
            .collect();
        let st = if range.len() == self.page {
            &self.full
        } else {
            self.last.as_ref().unwrap()
        };
        let mut tx = self.c.transaction().unwrap();
        tx.execute(st, &params).unwrap();
        tx.commit().unwrap();
    }

    /// Writes every page after a checkpoint, timed.
    fn all(mut self) -> Timing {
        checkpoint(&mut self.c);
        let watch = Stopwatch::start(Some(self.pid));
        for i in 0..self.pages() {
            self.write(i);
        }
        watch.stop()
    }
}

/// Creates `floor.<table>` for each of `tables`: the store's `findings` shape (see the
/// module docs), empty.
pub fn floor_tables(db: &Database, tables: &[&str]) {
    let mut c = db.connect();
    c.batch_execute("CREATE SCHEMA IF NOT EXISTS floor")
        .unwrap();
    for t in tables {
        c.batch_execute(&format!(
            "CREATE TABLE floor.{t} (LIKE findings INCLUDING DEFAULTS INCLUDING IDENTITY
                                     INCLUDING INDEXES)"
        ))
        .unwrap();
    }
}

/// Drops the floor's tables: left, their new rows would be autovacuumed (and their dirty
/// buffers written) while the store's phases are timed, work the floor never waited for
/// (seen in the server's log with `log_autovacuum_min_duration = 0`).
pub fn drop_floor_tables(db: &Database) {
    db.connect()
        .batch_execute("DROP SCHEMA floor CASCADE")
        .unwrap();
}

/// The floor's two ways and the constrained reference, each into its own fresh table.
pub fn floors(db: &Database, findings: &[Finding], extras: &[Extra], page: usize) -> Floors {
    floor_tables(db, &["multi", "rows"]);
    let mut c = db.connect();
    let columns = floor_columns(&mut c);
    let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
    c.batch_execute(
        "CREATE TABLE floor.scans (id BIGINT PRIMARY KEY);
         CREATE TABLE floor.runs (id BIGINT PRIMARY KEY);
         INSERT INTO floor.scans VALUES (1);
         INSERT INTO floor.runs VALUES (1);
         CREATE TABLE floor.constrained (LIKE findings INCLUDING DEFAULTS INCLUDING IDENTITY
                                         INCLUDING INDEXES INCLUDING CONSTRAINTS,
             FOREIGN KEY (scan_id) REFERENCES floor.scans (id),
             FOREIGN KEY (last_run_id) REFERENCES floor.runs (id));",
    )
    .unwrap();
    let pid = backend_pid(&mut c);
    let multi = FloorPages::new(db, "multi", findings, extras, page).all();
    let constrained = FloorPages::new(db, "constrained", findings, extras, page).all();

    // Prepared per row: one execution (one round trip) per row.
    let one = c.prepare(&insert_sql("rows", &names, 1)).unwrap();
    checkpoint(&mut c);
    let watch = Stopwatch::start(Some(pid));
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(names.len());
    for (chunk, xs) in findings.chunks(page).zip(extras.chunks(page)) {
        let mut tx = c.transaction().unwrap();
        for (f, x) in chunk.iter().zip(xs) {
            params.clear();
            params.extend(columns.iter().map(|(_, col)| value(*col, f, x)));
            tx.execute(&one, &params).unwrap();
        }
        tx.commit().unwrap();
        params.clear();
    }
    let per_row = watch.stop();
    let mut count = |t: &str| -> i64 {
        c.query_one(&format!("SELECT count(*) FROM floor.{t}"), &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(count("multi"), findings.len() as i64);
    assert_eq!(count("rows"), findings.len() as i64);
    assert_eq!(count("constrained"), findings.len() as i64);
    drop(c);
    drop_floor_tables(db);
    Floors {
        multi,
        per_row,
        constrained,
    }
}

/// Opens the store in `db` (migrating it: the schema the floor copies).
pub fn open_store(db: &Database) -> Store {
    Store::open_at(&db.location()).expect("open the store on PostgreSQL")
}
