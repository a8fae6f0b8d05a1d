//! The SQLite store: the only module that holds SQL.
//!
//! Tables (`instances`, `scans`, `sync_runs`, `findings`, `finding_events`,
//! `webhook_outbox`, `owners`, `scan_leases`, and the listener's `hook_deliveries` and
//! `readiness_probe`) are a documented interface: operators query the file with `sqlite3`.
//! Schema changes are numbered migrations in `migrations/`, applied at open by writers (each
//! in one transaction, versioned with `PRAGMA user_version`); read-only commands use
//! [`Store::open_read_only`], which never writes. A file written by a newer scansync is
//! refused rather than guessed at. The connection runs in WAL mode (readers such as
//! `scansync findings` never block the daemon), with foreign keys on, `busy_timeout` 5 s,
//! `synchronous=NORMAL` and a checkpoint every 10,000 WAL pages (see [`WAL_AUTOCHECKPOINT`]).
//!
//! # Dedup and lifecycle (the README's "When is a finding fixed?")
//! - A finding row is unique per (scan, fingerprint), the fingerprint being
//!   [`Finding::fingerprint`] (recipe 2, recorded per row). Each page is one transaction: a
//!   crash between pages keeps every earlier page, and the run row's counters always match
//!   the pages committed. Only the run holding its scan's lease stores (`lease.rs`).
//! - First time a fingerprint is seen: state `new` (or what the vendor's verdict says),
//!   event `created`, `counts.new`.
//! - Known, listed by this run: `new`/`open`/`reopened`/`missing` become `open`; `fixed`
//!   becomes `reopened` (or its local triage); a local triage holds; the vendor's verdict
//!   applies (resolved → `fixed`, false positive / accepted → that state unless triaged
//!   locally). Each state change is an event; so are severity and vendor status changes.
//! - Seen again within the same run (a repeated or overlapping page), or already decided by a
//!   newer run (`touched_run_id`): nothing changes, so `times_seen` counts runs and
//!   `last_run_id` never moves backwards.
//! - [`Store::finish_run`] with [`RunEnd::Succeeded`] (a complete listing) fixes the scan's
//!   findings the run did not list, or holds them as `missing` when the mass-fix guard trips
//!   (see there). A failed, interrupted or timed-out run records its state and error text
//!   and never fixes anything; nor does a run that a newer run of its scan overtook (it
//!   succeeded, or stored a page: its rows may stand in for this run's, see
//!   `RunContext::overtaken_by`).
//! - `finish_run` also writes the run's webhook notifications to `webhook_outbox`, in the
//!   same transaction, from the run's events (see `outbox.rs` and [`crate::webhooks`]).
//!
//! Triage (`triage.rs`): a person's triage (`Store::triage`) wins over a `[[suppress]]`
//! rule's, applied by the page import, which wins over the vendor's word; a triage is kept
//! while its finding is fixed and is what it returns to. An acceptance's `until` and a higher
//! severity (when asked) end it at the next import that lists the finding.
//!
//! Events caused by a page import (`reopened`, `returned`, `vendor_state`,
//! `fixed` by verdict, `severity_changed`, `status_changed`, and the triage events
//! `suppressed`, `released`, `expired`, `escalated`) are written by triggers in the
//! schema, which see a row's old and new values in the same statement; that keeps the import
//! to one `INSERT … ON CONFLICT DO UPDATE` per finding, no lookup first. `fixed` and `missing`
//! at a run's end and `state_set` are written here.
//!
//! # Cost
//! The page import is the hot path (a million findings per run happen), so it avoids what
//! SQLite makes expensive per row: no `RETURNING` (it materialises a temporary table per
//! statement run) and no `CHECK (x IN (…))` (a temporary b-tree per row written; migration
//! 0004 spells them as OR-chains). A page's counters come from `changes()` per upsert and
//! from the events the triggers wrote during the page. BENCHMARKS.md has the measurements.
//!
//! # Layout
//! this file: opening, migrations, the error type; `types.rs`: the rows and words of the
//! API; `runs.rs`: beginning and ending runs; `ingest.rs`: the page import and the fix at a
//! run's end; `query.rs`: reading findings; `outbox.rs`, `lease.rs`, `listener.rs`,
//! `triage.rs`, `retention.rs`: their tables; `shared.rs`: the writer and reader handles a
//! process shares.
//!
//! # Unfinished runs
//! Opening the store never touches runs. A `running` run belongs to its owner (a process, by
//! a random id with a heartbeat in `owners`); once the owner is gone it is abandoned, and a
//! daemon adopts it or ends it (`lease.rs`). No process id is trusted: they repeat across
//! PID namespaces and mean nothing on another host.

mod lease;
mod retention;
pub use retention::PruneReport;
mod listener;
pub use lease::{heartbeat_every, lease_ttl, DueRunTaken, Owner, ScanClaim};
pub use listener::Claim;

pub use crate::config::StoreLocation;
use crate::finding::{Finding, Location, Severity, FINGERPRINT_RECIPE};
mod db;
use db::{params, Db, OptionalExtension, Row};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// The numbered migrations, in order, each with the schema version it brings the store to
/// (the number in its file name). Versions are explicit rather than positions so that
/// migrations written on parallel branches keep their numbers when merged: each applies in
/// version order, and `user_version` ends at the last one.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/sqlite/0001_init.sql")),
    (2, include_str!("migrations/sqlite/0002_webhooks.sql")),
    (
        3,
        include_str!("migrations/sqlite/0003_hook_deliveries.sql"),
    ),
    (
        4,
        include_str!("migrations/sqlite/0004_checks_without_in_lists.sql"),
    ),
    (5, include_str!("migrations/sqlite/0005_lifecycle.sql")),
    (6, include_str!("migrations/sqlite/0006_triage.sql")),
    (
        7,
        include_str!("migrations/sqlite/0007_created_events_per_page.sql"),
    ),
    (9, include_str!("migrations/sqlite/0009_present_count.sql")),
];

/// The PostgreSQL schema's migrations: version 7 is the whole schema as SQLite has it at 7
/// (a version means the same tables and columns on both); 8 is PostgreSQL's own (keys and
/// storage, see the file); later ones come in pairs with SQLite's, from 9.
const MIGRATIONS_POSTGRES: &[(i64, &str)] = &[
    (7, include_str!("migrations/postgres/0007_schema.sql")),
    (
        8,
        include_str!("migrations/postgres/0008_no_hot_path_foreign_keys.sql"),
    ),
    (
        9,
        include_str!("migrations/postgres/0009_present_count.sql"),
    ),
];

mod copy;
pub use copy::{copy, CopyReport};
mod ingest;
mod outbox;
mod postgres;
pub use postgres::PgTarget;
mod query;
mod runs;
mod shared;
mod types;
use ingest::*;
pub use outbox::{NotificationBody, OutboxMessage, OutboxRow, MAX_FINDINGS};
use query::*;
use runs::*;
pub use shared::{start_store, with_store, Reader, SharedStore};
pub use types::*;
mod triage;
pub use triage::{FindingDetail, Triage, TriageRequest, TriageSource, MIN_FINGERPRINT_PREFIX};

/// WAL pages after which a commit copies the WAL back into the database file (SQLite's
/// default is 1,000, 4 MiB). A page import dirties about one index page per new finding (the
/// fingerprint is a hash, so inserts land all over the dedup index), so with the default
/// every other page of findings paid a checkpoint and its two fsyncs: 40 % of the import's
/// CPU profile. At 10,000 pages (40 MiB) a checkpoint comes every ~20 pages of findings and
/// copies a page changed by several of them once: 15 % less CPU for a million-finding
/// import, 40 % less wall time at 300,000 (BENCHMARKS.md).
const WAL_AUTOCHECKPOINT: i64 = 10_000;
/// What the WAL file is cut back to after a checkpoint (bytes), so one large import does not
/// leave a large file behind.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Row id of a `sync_runs` row.
/// Row id of a `sync_runs` row.
pub type RunId = i64;

/// Errors from the store. SQLite's own message is kept; the path is named where known.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: db::Error,
    },
    #[error("store: {0}")]
    Db(#[from] db::Error),
    #[error("store: {0}")]
    Invalid(String),
    /// [`Store::begin_due_run`]: this run of the scan (another process's) served the due
    /// time; nothing was begun. Never returned from the public API.
    #[error("run {0} served this due time")]
    ServedBy(RunId),
    /// Another live run holds the scan's lease ([`Store::begin_run`]).
    #[error("scan \"{scan}\" is being run by run {} of {owner}", .run_id.map_or_else(|| "?".to_string(), |r| r.to_string()))]
    ScanBusy {
        scan: String,
        run_id: Option<RunId>,
        owner: String,
    },
    /// This process no longer holds the lease of the run's scan (its heartbeat expired and
    /// another process took the scan, or adopted the run): the run stores nothing more.
    #[error("run {0} lost its scan's lease to another process; it stores nothing more")]
    LeaseLost(RunId),
    /// No finding answers to an id or fingerprint ([`Store::resolve_finding`]).
    #[error("{0}")]
    NoSuchFinding(String),
    /// A fingerprint prefix, or a fingerprint in several scans, names more than one finding.
    #[error("{0}")]
    AmbiguousFinding(String),
    /// A command other than the daemon, `sync` and `scan` found no store.
    #[error("no store at {0}; `scansync sync` or the daemon creates it")]
    Missing(String),
    /// A command other than the daemon, `sync` and `scan` found a store older than this
    /// scansync.
    #[error(
        "store {path} has schema version {found}, older than this scansync's {known}; \
         `scansync sync` or the daemon upgrades it (other commands never migrate it)"
    )]
    SchemaTooOld {
        path: String,
        found: i64,
        known: i64,
    },
    /// `store copy` into a store that already holds rows: ids would collide, and merging
    /// two stores' histories is not a copy.
    #[error(
        "{to} is not empty (its table {table} has rows); `store copy` copies only into an \
         empty store, and nothing was copied"
    )]
    CopyIntoNonEmpty { to: String, table: &'static str },
    /// `store copy` found other counts on the two sides when it was done (nothing was kept).
    #[error(
        "store copy: table {table} has {source_rows} rows in the source but {copied_rows} in \
         the copy (or another largest id); nothing was copied"
    )]
    CopyMismatch {
        table: &'static str,
        source_rows: u64,
        copied_rows: u64,
    },
    #[error(
        "store {path} has schema version {found}, but this scansync knows only up to \
         version {known}; upgrade scansync, or point it at another store file"
    )]
    SchemaTooNew {
        path: String,
        found: i64,
        known: i64,
    },
}

/// scansync's clock as stored: RFC 3339 UTC with milliseconds, so text order is time order.
fn now() -> String {
    stamp(chrono::Utc::now())
}

/// A time as the store writes it (see [`now`]).
fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The store. One writer connection; readers open their own (WAL lets them run beside it).
pub struct Store {
    conn: Db,
    /// The webhooks `finish_run` writes notifications for (see [`Store::set_webhook_routes`]).
    notifications: Option<outbox::Notifications>,
    /// This process, as the leases name it.
    owner: Owner,
    /// The config's `[[suppress]]` rules, applied as pages are stored (see
    /// [`Store::set_suppress_rules`]).
    suppress_rules: Vec<crate::config::SuppressRule>,
    /// How this process plans the pages of its runs on PostgreSQL (see
    /// [`ingest::LookedUpRuns`]).
    looked_up: ingest::LookedUpRuns,
}

impl Store {
    /// Opens (creating file and parent folder), applies migrations, sets WAL, foreign keys
    /// and busy_timeout. Does not touch runs: see [`Store::abandoned_runs`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_sqlite(path, Schema::Migrate)
    }

    /// [`Store::open`], or with [`Schema::Existing`] only a file that is there at this
    /// binary's schema version, created and migrated by nothing but this.
    fn open_sqlite(path: &Path, schema: Schema) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let open_err = |source| StoreError::Open {
            path: shown.clone(),
            source,
        };
        let flags = match schema {
            Schema::Migrate => rusqlite::OpenFlags::default(),
            Schema::Existing if !path.exists() => return Err(StoreError::Missing(shown)),
            Schema::Existing => {
                rusqlite::OpenFlags::default() - rusqlite::OpenFlags::SQLITE_OPEN_CREATE
            }
        };
        if let Some(parent) = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty() && schema == Schema::Migrate)
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Invalid(format!(
                    "cannot create the folder {} for the store: {e}; create it or choose \
                     another store path",
                    parent.display()
                ))
            })?;
        }
        let open_err = |source: rusqlite::Error| open_err(source.into());
        let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        if schema == Schema::Existing {
            // Before anything below writes to the file (WAL mode is kept in it).
            let found: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(open_err)?;
            check_version(found, MIGRATIONS, shown.clone())?;
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        // Checkpoint every WAL_AUTOCHECKPOINT pages instead of SQLite's 1,000: see there.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
            .map_err(open_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        let mut conn = Db::sqlite(conn);
        if schema == Schema::Migrate {
            migrate(&mut conn, &shown)?;
        }
        Ok(Store::with_conn(conn))
    }

    /// Opens an existing store for reading only (`findings`, `runs`, `export`, `webhook
    /// pending`): never creates, migrates or writes it. A missing file, or a schema older or
    /// newer than this binary's, is an error that says what to do.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        if !path.exists() {
            return Err(StoreError::Missing(shown));
        }
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: shown.clone(),
            source: source.into(),
        })?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(db::Error::from)?;
        let conn = Db::sqlite(conn);
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        check_version(found, MIGRATIONS, shown)?;
        Ok(Store::with_conn(conn))
    }

    /// Opens the store where the config says, for writing, creating and migrating it first:
    /// the daemon, `sync` and `scan` (see [`Schema::Migrate`]).
    pub fn open_at(location: &StoreLocation) -> Result<Store, StoreError> {
        Store::open_for_writing(location, Schema::Migrate)
    }

    /// Opens the store where the config says, for writing, doing to its schema what
    /// `schema` allows: the same on both backends.
    pub fn open_for_writing(location: &StoreLocation, schema: Schema) -> Result<Store, StoreError> {
        match location {
            StoreLocation::Sqlite(path) => Store::open_sqlite(path, schema),
            StoreLocation::Postgres(target) => {
                let mut conn = postgres::session(target, false)?;
                match schema {
                    Schema::Migrate => postgres::migrate(&mut conn, &target.shown())?,
                    Schema::Existing => check_version(
                        postgres::version(&conn)?,
                        MIGRATIONS_POSTGRES,
                        target.shown(),
                    )?,
                }
                Ok(Store::with_conn(conn))
            }
        }
    }

    /// Opens the store where the config says, for reading only (see [`Store::open_read_only`]).
    pub fn open_read_only_at(location: &StoreLocation) -> Result<Store, StoreError> {
        match location {
            StoreLocation::Sqlite(path) => Store::open_read_only(path),
            StoreLocation::Postgres(target) => Store::open_postgres_read_only(target),
        }
    }

    /// Whether the store can be reached and what it holds, in words for `check-config` and
    /// `test-connection`, without writing anything. An error: it cannot be reached (a wrong
    /// password, host or certificate), or it was written by a newer scansync.
    pub fn probe(location: &StoreLocation) -> Result<String, StoreError> {
        // Each backend's own last version: PostgreSQL has migrations SQLite has not (8).
        let migrations = match location {
            StoreLocation::Sqlite(_) => MIGRATIONS,
            StoreLocation::Postgres(_) => MIGRATIONS_POSTGRES,
        };
        let known = latest(migrations);
        let found = match location {
            StoreLocation::Sqlite(path) if !path.exists() => {
                return Ok("no file yet; the daemon or `scansync sync` creates it".into())
            }
            StoreLocation::Sqlite(path) => Store::open_read_only(path).map(|_| known),
            StoreLocation::Postgres(target) => {
                let conn = postgres::session(target, true)?;
                postgres::version(&conn).map_err(StoreError::from)
            }
        };
        match found {
            Ok(0) => Ok("reachable, empty; the daemon or `scansync sync` creates the schema".into()),
            Ok(v) if v == known => Ok(format!("reachable, schema version {v}")),
            Ok(v) if v < known => Ok(format!(
                "reachable, schema version {v}; the daemon or `scansync sync` upgrades it to {known}"
            )),
            Ok(v) => Err(StoreError::SchemaTooNew {
                path: location.to_string(),
                found: v,
                known,
            }),
            Err(StoreError::SchemaTooOld { found, .. }) => Ok(format!(
                "reachable, schema version {found}; the daemon or `scansync sync` upgrades it to {known}"
            )),
            Err(e) => Err(e),
        }
    }

    /// [`Store::open_read_only`] on PostgreSQL: the session is read-only, the schema must be
    /// this binary's version.
    pub fn open_postgres_read_only(target: &PgTarget) -> Result<Store, StoreError> {
        let conn = postgres::session(target, true)?;
        check_version(
            postgres::version(&conn)?,
            MIGRATIONS_POSTGRES,
            target.shown(),
        )?;
        Ok(Store::with_conn(conn))
    }

    fn with_conn(conn: Db) -> Store {
        Store {
            conn,
            notifications: None,
            owner: Owner::new(),
            suppress_rules: Vec::new(),
            looked_up: ingest::LookedUpRuns::default(),
        }
    }

    /// The connection settings that shape write speed, as `(pragma, value)` in the order they
    /// must be applied to a new file (`page_size` before anything is written). The ingest
    /// benchmark's floor copies them, so it measures bare SQLite under the store's settings.
    pub fn write_pragmas(&self) -> Result<Vec<(String, i64)>, StoreError> {
        [
            "page_size",
            "synchronous",
            "foreign_keys",
            "cache_size",
            "wal_autocheckpoint",
            "journal_size_limit",
            "temp_store",
        ]
        .iter()
        .map(|name| {
            let value: i64 = self
                .conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?;
            Ok((name.to_string(), value))
        })
        .collect()
    }

    /// The `[[suppress]]` rules pages are stored with (none until this is called). Set from
    /// the config by [`crate::sync::SyncContext`], again on every reload; a rule removed
    /// releases its findings at their scan's next run.
    pub fn set_suppress_rules(&mut self, rules: Vec<crate::config::SuppressRule>) {
        self.suppress_rules = rules;
    }
}

/// What opening a store for writing may do to its schema. Migrations run at the start of
/// the daemon, `sync` and `scan` only; every other command works on the store they made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Create the store when there is none and apply the migrations it lacks.
    Migrate,
    /// Use the store only as it is: none there is [`StoreError::Missing`], an older schema
    /// [`StoreError::SchemaTooOld`], and nothing is created or migrated (`triage`, `store
    /// prune`: a typo in `--store` must not leave a new store behind, on either backend).
    Existing,
}

/// The schema version the last of `migrations` brings a store to.
fn latest(migrations: &[(i64, &str)]) -> i64 {
    migrations.last().map_or(0, |(v, _)| *v)
}

/// Refuses a schema version `found` other than the last of `migrations` (0: no store).
fn check_version(found: i64, migrations: &[(i64, &str)], path: String) -> Result<(), StoreError> {
    let known = latest(migrations);
    if found > known {
        return Err(StoreError::SchemaTooNew { path, found, known });
    }
    if found == 0 {
        return Err(StoreError::Missing(path));
    }
    if found < known {
        return Err(StoreError::SchemaTooOld { path, found, known });
    }
    Ok(())
}

/// Brings the schema up to date, one migration per transaction. The version is re-read
/// inside the (immediate, so exclusive-writer) transaction so two processes opening a fresh
/// file at once do not both apply a migration.
fn migrate(conn: &mut Db, path: &str) -> Result<(), StoreError> {
    let known = latest(MIGRATIONS);
    loop {
        let tx = conn.write_transaction()?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > known {
            return Err(StoreError::SchemaTooNew {
                path: path.to_owned(),
                found: version,
                known,
            });
        }
        let Some((next, sql)) = MIGRATIONS.iter().find(|(v, _)| *v > version) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        if *next == 5 {
            rekey_v2(&tx)?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {next}"))?;
        tx.commit()?;
    }
}

/// Migration 5's code half: every finding re-keyed to fingerprint recipe 2 in place (same
/// row id, state and history), inside the migration's transaction. Rows of one scan that
/// share recipe 2's parts are numbered as occurrences by line, then by age.
fn rekey_v2(conn: &Db) -> Result<(), StoreError> {
    const PARTS: &str = "SELECT id, scan_id, title, rule_id, cwe, location_kind, file_path, \
         start_line, end_line, http_method, api_path, api_host FROM findings";
    /// The identity parts of a row, as a finding recipe 2 can key.
    fn parts(r: &Row<'_>) -> db::Result<Finding> {
        let location = location_from_row(r, 5)?;
        Ok(Finding {
            vendor_id: None,
            title: r.get(2)?,
            severity: Severity::Info,
            vendor_status: None,
            cwe: r.get(4)?,
            owasp: None,
            rule_id: r.get(3)?,
            location,
            description: None,
            remediation: None,
            vendor_url: None,
            vendor_first_seen: None,
            vendor_last_seen: None,
            raw: String::new(),
            verdict: None,
        })
    }
    // (scan, recipe-2 base key) → the rows sharing it, as (start line, end line, id).
    type Sightings = Vec<(Option<u32>, Option<u32>, i64)>;
    let mut by_key: std::collections::HashMap<(i64, String), Sightings> =
        std::collections::HashMap::new();
    {
        let mut stmt = conn.prepare(&format!("{PARTS} ORDER BY id"))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let finding = parts(&r)?;
            let (start, end) = finding.lines();
            by_key
                .entry((r.get(1)?, finding.fingerprint(0)))
                .or_default()
                .push((start, end, r.get(0)?));
        }
    }
    // Out of the way first, so no new key collides with an old one still in place.
    conn.execute("UPDATE findings SET fingerprint = 'rekey:' || id", [])?;
    let mut update = conn
        .prepare("UPDATE findings SET fingerprint = ?2, fingerprint_version = ?3 WHERE id = ?1")?;
    let mut read = conn.prepare(&format!("{PARTS} WHERE id = ?1"))?;
    for ((_, base), mut rows) in by_key {
        rows.sort();
        for (occurrence, (_, _, id)) in rows.into_iter().enumerate() {
            let fingerprint = match occurrence {
                0 => base.clone(),
                n => read.query_row(params![id], parts)?.fingerprint(n as u32),
            };
            update.execute(params![id, fingerprint, FINGERPRINT_RECIPE])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod test_db;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod attack_tests;

#[cfg(test)]
mod house_attack_tests;

#[cfg(test)]
mod s8_attack_tests;

#[cfg(test)]
mod s9_attack_tests;

#[cfg(test)]
mod s10_attack_tests;

#[cfg(test)]
mod s11_attack_tests;
#[cfg(test)]
mod s12_attack_tests;
#[cfg(test)]
mod s12b_attack_tests;
#[cfg(test)]
mod s12c_attack_tests;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.into())
    }
}
