//! `scansync store copy`: a whole store into an empty one, on either backend (the upgrade
//! path from SQLite to PostgreSQL).
//!
//! Rows keep their ids: findings, events, runs and notifications point at each other by id,
//! and operators' queries and webhook receivers have seen them. So the destination must be
//! empty (two stores' ids would collide, and merging histories is not a copy), and on
//! PostgreSQL each identity sequence is moved past the copied ids afterwards, else the next
//! insert takes id 1 again. The source is read in one snapshot, so a daemon still writing it
//! yields a consistent (if slightly old) copy. The destination is checked before anything
//! is written there (a refusal leaves it as it was, not even scansync's schema), then
//! migrated, then written in one transaction, so a failure anywhere, the final count check
//! included, leaves it an empty store.

use super::db::{params, params_from_iter, Backend, Db, OptionalExtension, Value};
use super::{Store, StoreError, StoreLocation};

/// A table to copy and the column it is read in order of (unique, never NULL). Ordered so
/// that every foreign key points at a table copied before it.
struct Table {
    name: &'static str,
    key: &'static str,
}

const TABLES: &[Table] = &[
    Table {
        name: "instances",
        key: "id",
    },
    Table {
        name: "scans",
        key: "id",
    },
    Table {
        name: "sync_runs",
        key: "id",
    },
    Table {
        name: "findings",
        key: "id",
    },
    Table {
        name: "finding_events",
        key: "id",
    },
    Table {
        name: "webhook_outbox",
        key: "id",
    },
    Table {
        name: "owners",
        key: "owner",
    },
    Table {
        name: "scan_leases",
        key: "scan",
    },
    // SQLite's hidden rowid, a real column on PostgreSQL: copied explicitly both ways, since
    // the newest delivery of a scan is the one with the largest.
    Table {
        name: "hook_deliveries",
        key: "rowid",
    },
    Table {
        name: "readiness_probe",
        key: "id",
    },
];

/// Bound values per INSERT: under SQLite's 32,766 and PostgreSQL's 65,535 parameters. A
/// statement of several hundred rows costs one round trip to PostgreSQL instead of one per
/// row, which is most of a copy's time there.
const PARAMS_PER_INSERT: usize = 30_000;

/// Rows per INSERT (and per read from the source) at most, for tables of few columns.
const MAX_ROWS_PER_INSERT: usize = 1_000;

/// What a copy moved: each table with its rows, in the order copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: Vec<(&'static str, u64)>,
}

/// Copies every row of the store at `from` into the empty store at `to` (created and
/// migrated if need be, once [`check_destination`] found nothing else there), then checks
/// each table's row count and largest key on both sides before committing. See the
/// module's documentation for why it is done this way.
pub fn copy(from: &StoreLocation, to: &StoreLocation) -> Result<CopyReport, StoreError> {
    let mut source = Store::open_read_only_at(from)?;
    check_destination(to)?;
    let mut destination = Store::open_at(to)?;
    let source = source.conn.read_snapshot()?;
    let destination = destination.conn.write_transaction()?;
    check_tables(&source, from)?;
    check_tables(&destination, to)?;
    for table in TABLES {
        if table_rows(&destination, table)?.0 > 0 {
            return Err(StoreError::CopyIntoNonEmpty {
                to: to.to_string(),
                table: table.name,
            });
        }
    }
    let mut report = CopyReport { tables: Vec::new() };
    for table in TABLES {
        let ours = columns(&source, table.name)?;
        let theirs = columns(&destination, table.name)?;
        if sorted(&ours) != sorted(&theirs) {
            return Err(StoreError::Invalid(format!(
                "table {}: the source has the columns {} but {to} has {}",
                table.name,
                ours.join(", "),
                theirs.join(", ")
            )));
        }
        let copied = copy_table(&source, &destination, table, &ours)?;
        report.tables.push((table.name, copied));
    }
    if destination.backend() == Backend::Postgres {
        advance_sequences(&destination)?;
    }
    for table in TABLES {
        let (source_rows, source_max) = table_rows(&source, table)?;
        let (copied_rows, copied_max) = table_rows(&destination, table)?;
        if (source_rows, &source_max) != (copied_rows, &copied_max) {
            return Err(StoreError::CopyMismatch {
                table: table.name,
                source_rows,
                copied_rows,
            });
        }
    }
    destination.commit()?;
    Ok(report)
}

fn sorted(names: &[String]) -> Vec<&str> {
    let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
    names.sort_unstable();
    names
}

/// Refuses, before anything is written there, a destination that is not an empty store or
/// nothing at all: a table that is not scansync's (`--to` naming another application's
/// database by mistake) or a row in one of scansync's. Read on a read-only connection, so a
/// refused copy leaves the destination exactly as it was; the schema is made only after.
fn check_destination(to: &StoreLocation) -> Result<(), StoreError> {
    let db = match to {
        StoreLocation::Sqlite(path) if !path.exists() => return Ok(()),
        StoreLocation::Sqlite(path) => Db::sqlite(
            rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|source| StoreError::Open {
                path: to.to_string(),
                source: source.into(),
            })?,
        ),
        StoreLocation::Postgres(target) => super::postgres::session(target, true)?,
    };
    let present = check_tables(&db, to)?;
    for table in TABLES
        .iter()
        .filter(|t| present.iter().any(|p| p == t.name))
    {
        if table_rows(&db, table)?.0 > 0 {
            return Err(StoreError::CopyIntoNonEmpty {
                to: to.to_string(),
                table: table.name,
            });
        }
    }
    Ok(())
}

/// Refuses a store with a table this copy does not know: a table added by a later migration
/// without being added here would otherwise be left behind without a word, and one of
/// another application means `--to` names the wrong database. The tables there otherwise.
fn check_tables(db: &Db, location: &StoreLocation) -> Result<Vec<String>, StoreError> {
    let sql = match db.backend() {
        Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables
              WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
                AND table_name <> 'scansync_schema' ORDER BY 1"
        }
    };
    let names = db
        .prepare(sql)?
        .query_map([], |r| r.get::<String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let known = |name: &str| name.starts_with("sqlite_") || TABLES.iter().any(|t| t.name == name);
    match names.iter().find(|n| !known(n)) {
        Some(unknown) => Err(StoreError::Invalid(format!(
            "{location} has a table {unknown} that `store copy` does not know; \
             nothing was copied"
        ))),
        None => Ok(names),
    }
}

/// The columns of `table`, SQLite's hidden rowid of `hook_deliveries` included (PostgreSQL
/// has it as a real column).
fn columns(db: &Db, table: &str) -> Result<Vec<String>, StoreError> {
    let sql = match db.backend() {
        Backend::Sqlite => "SELECT name FROM pragma_table_info(?1) ORDER BY cid",
        Backend::Postgres => {
            "SELECT CAST(column_name AS TEXT) FROM information_schema.columns
              WHERE table_schema = current_schema() AND table_name = ?1
              ORDER BY ordinal_position"
        }
    };
    let mut names = db
        .prepare(sql)?
        .query_map(params![table], |r| r.get::<String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    if db.backend() == Backend::Sqlite && table == "hook_deliveries" {
        names.push("rowid".to_owned());
    }
    Ok(names)
}

/// Rows and largest key of a table.
fn table_rows(db: &Db, table: &Table) -> Result<(u64, Value<'static>), StoreError> {
    Ok(db.query_row(
        &format!(
            "SELECT count(*), max({key}) FROM {name}",
            key = table.key,
            name = table.name
        ),
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// Copies one table in key order, a page of rows per statement; the rows copied.
fn copy_table(
    source: &Db,
    destination: &Db,
    table: &Table,
    columns: &[String],
) -> Result<u64, StoreError> {
    let rows_per_insert = (PARAMS_PER_INSERT / columns.len()).clamp(1, MAX_ROWS_PER_INSERT);
    let key_at = columns
        .iter()
        .position(|c| c == table.key)
        .ok_or_else(|| StoreError::Invalid(format!("table {} has no {}", table.name, table.key)))?;
    let list = columns.join(", ");
    let (name, key) = (table.name, table.key);
    let first_page = format!("SELECT {list} FROM {name} ORDER BY {key} LIMIT {rows_per_insert}");
    let next_page = format!(
        "SELECT {list} FROM {name} WHERE {key} > ?1 ORDER BY {key} LIMIT {rows_per_insert}"
    );
    let mut after: Option<Value<'static>> = None;
    let mut copied = 0u64;
    loop {
        let page: Vec<Vec<Value<'static>>> = {
            let mut stmt = match &after {
                None => source.prepare_cached(&first_page)?,
                Some(_) => source.prepare_cached(&next_page)?,
            };
            let row = |r: &super::db::Row<'_>| {
                (0..columns.len())
                    .map(|i| r.get::<Value<'static>>(i))
                    .collect::<Result<Vec<_>, _>>()
            };
            match &after {
                None => stmt.query_map([], row)?.collect::<Result<_, _>>()?,
                Some(last) => stmt
                    .query_map(params![last], row)?
                    .collect::<Result<_, _>>()?,
            }
        };
        let Some(last) = page.last() else {
            return Ok(copied);
        };
        after = Some(last[key_at].clone());
        let page = if destination.backend() == Backend::Postgres {
            without_nul(page)
        } else {
            page
        };
        insert(destination, name, &list, columns.len(), &page)?;
        copied += page.len() as u64;
        if page.len() < rows_per_insert {
            return Ok(copied);
        }
    }
}

/// `rows` with every NUL in their text replaced as a sync run replaces it in vendor text
/// ([`crate::finding::without_nul`]): a SQLite store written before that rule may hold one,
/// and PostgreSQL's `text` cannot, so the copy would otherwise fail as a whole.
fn without_nul(rows: Vec<Vec<Value<'static>>>) -> Vec<Vec<Value<'static>>> {
    rows.into_iter()
        .map(|row| {
            row.into_iter()
                .map(|value| match value {
                    Value::Text(text) if text.contains('\0') => {
                        Value::Text(crate::finding::without_nul(&text).into_owned().into())
                    }
                    other => other,
                })
                .collect()
        })
        .collect()
}

/// One multi-row INSERT of `rows`.
fn insert(
    db: &Db,
    table: &str,
    list: &str,
    width: usize,
    rows: &[Vec<Value<'static>>],
) -> Result<(), StoreError> {
    let tuples: Vec<String> = (0..rows.len())
        .map(|r| {
            let marks: Vec<String> = (1..=width).map(|c| format!("?{}", r * width + c)).collect();
            format!("({})", marks.join(", "))
        })
        .collect();
    let sql = format!("INSERT INTO {table} ({list}) VALUES {}", tuples.join(", "));
    db.prepare_cached(&sql)?
        .execute(params_from_iter(rows.iter().flatten()))?;
    Ok(())
}

/// Moves every identity sequence of the copied tables past the largest id copied, so the
/// store's next insert does not collide with a copied row.
fn advance_sequences(db: &Db) -> Result<(), StoreError> {
    for table in TABLES {
        let sequence: Option<String> = db.query_row(
            "SELECT pg_get_serial_sequence(?1, ?2)",
            params![table.name, table.key],
            |r| r.get(0),
        )?;
        let Some(sequence) = sequence else { continue };
        // No row, no setval: the sequence of an empty table starts at 1 as it should.
        db.query_row(
            &format!(
                "SELECT setval(CAST(?1 AS regclass), max({key})) FROM {name} \
                 HAVING count(*) > 0",
                key = table.key,
                name = table.name
            ),
            params![sequence],
            |_| Ok(()),
        )
        .optional()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_db::TestDb;
    use super::super::tests::{accept, finding, findings, import, scope};
    use super::super::{now, RunEnd};
    use super::*;
    use crate::config::{EventType, Route};
    use std::time::Duration;

    /// A store with rows in every table: runs that created, fixed and failed, a triage,
    /// notifications, webhook deliveries, a run still running (its lease and owner) and the
    /// readiness row.
    fn fill(db: &TestDb) {
        let mut store = db.open();
        store.set_webhook_routes(
            vec![Route {
                name: "all".into(),
                events: vec![EventType::FindingsNew, EventType::FindingsFixed],
                min_severity: None,
                scans: Vec::new(),
            }],
            crate::webhooks::payload::body,
        );
        import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
        import(&mut store, "shop", &[findings(0..24)], RunEnd::Succeeded);
        import(
            &mut store,
            "api",
            &[findings(0..5)],
            RunEnd::Failed("boom".into()),
        );
        let id = store
            .resolve_finding(&finding(1).fingerprint(0), Some("shop"))
            .unwrap();
        store.triage(id, &accept(Some("2099-01-01"))).unwrap();
        for delivery in ["d-1", "d-2"] {
            store
                .claim_delivery("shop", delivery, Duration::from_secs(3600))
                .unwrap();
        }
        store.begin_run(&scope("api")).unwrap();
        store
            .conn
            .execute(
                "INSERT INTO readiness_probe (id, checked_at) VALUES (1, ?1)",
                params![now()],
            )
            .unwrap();
    }

    /// Every row of every table, columns by name, rows by key: what a copy must keep.
    type Dump = Vec<(&'static str, Vec<Vec<Value<'static>>>)>;

    fn dump(location: &StoreLocation) -> Dump {
        let store = Store::open_read_only_at(location).unwrap();
        let db = &store.conn;
        TABLES
            .iter()
            .map(|table| {
                let mut names = columns(db, table.name).unwrap();
                names.sort();
                let sql = format!(
                    "SELECT {} FROM {} ORDER BY {}",
                    names.join(", "),
                    table.name,
                    table.key
                );
                let rows = db
                    .prepare(&sql)
                    .unwrap()
                    .query_map([], |r| {
                        (0..names.len())
                            .map(|i| r.get::<Value<'static>>(i))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                (table.name, rows)
            })
            .collect()
    }

    /// The suite's backend on one side and SQLite on the other, both ways round (SQLite to
    /// SQLite in the plain run, to and from PostgreSQL in the run there).
    fn pairs() -> [(TestDb, TestDb); 2] {
        [
            (TestDb::new(), TestDb::sqlite()),
            (TestDb::sqlite(), TestDb::new()),
        ]
    }

    #[test]
    fn a_copy_holds_every_row_with_its_id_and_takes_new_rows_after_them() {
        for (from, to) in pairs() {
            fill(&from);
            let report = copy(&from.location(), &to.location()).unwrap();
            let before = dump(&from.location());
            assert_eq!(dump(&to.location()), before);
            for (table, rows) in &before {
                assert!(!rows.is_empty(), "the fixture has no row in {table}");
            }
            assert_eq!(
                report.tables,
                before
                    .iter()
                    .map(|(t, rows)| (*t, rows.len() as u64))
                    .collect::<Vec<_>>()
            );
            // The copy is a store like any other: a new run takes ids after the copied ones.
            let mut store = to.open();
            let run = import(&mut store, "shop", &[findings(20..40)], RunEnd::Succeeded);
            let runs = before.iter().find(|(t, _)| *t == "sync_runs").unwrap();
            assert_eq!(run.id, runs.1.len() as i64 + 1);
        }
    }

    #[test]
    fn a_store_with_rows_is_not_copied_into_and_is_left_as_it_was() {
        for (from, to) in pairs() {
            fill(&from);
            import(
                &mut to.open(),
                "other",
                &[findings(0..3)],
                RunEnd::Succeeded,
            );
            let before = dump(&to.location());
            let err = copy(&from.location(), &to.location()).unwrap_err();
            assert!(
                matches!(
                    err,
                    StoreError::CopyIntoNonEmpty {
                        table: "instances",
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err.to_string().contains("not empty"), "{err}");
            assert_eq!(dump(&to.location()), before);
        }
    }

    #[test]
    fn the_copy_knows_every_table_of_the_schema_and_refuses_one_it_does_not() {
        let db = TestDb::new();
        let store = db.open();
        for table in TABLES {
            assert!(
                !columns(&store.conn, table.name).unwrap().is_empty(),
                "{} is not in the schema",
                table.name
            );
        }
        check_tables(&store.conn, &db.location()).unwrap();
        store
            .conn
            .execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
            .unwrap();
        let err = check_tables(&store.conn, &db.location()).unwrap_err();
        assert!(err.to_string().contains("table notes"), "{err}");
    }

    #[test]
    fn a_nul_in_a_sqlite_store_is_copied_as_the_sync_now_stores_it() {
        let (from, to) = (TestDb::sqlite(), TestDb::new());
        let mut nul = finding(1);
        nul.title = "XSS in a\0b".into();
        import(&mut from.open(), "shop", &[vec![nul]], RunEnd::Succeeded);
        copy(&from.location(), &to.location()).unwrap();
        let title: String = to
            .open()
            .conn
            .query_row("SELECT title FROM findings", [], |r| r.get(0))
            .unwrap();
        let expected = if to.open().conn.backend() == Backend::Postgres {
            "XSS in a\u{FFFD}b"
        } else {
            "XSS in a\0b"
        };
        assert_eq!(title, expected);
    }

    /// Runs `sql` on the store's database as another program would, outside the store.
    fn outside(location: &StoreLocation, sql: &str) {
        match location {
            StoreLocation::Sqlite(path) => {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                rusqlite::Connection::open(path)
                    .unwrap()
                    .execute_batch(sql)
                    .unwrap();
            }
            StoreLocation::Postgres(target) => super::super::postgres::connect(target)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
        }
    }

    /// The tables of the store's database (schema), whoever made them.
    fn table_names(location: &StoreLocation) -> Vec<String> {
        let db = match location {
            StoreLocation::Sqlite(path) => Db::sqlite(rusqlite::Connection::open(path).unwrap()),
            StoreLocation::Postgres(target) => {
                super::super::postgres::session(target, true).unwrap()
            }
        };
        let sql = match db.backend() {
            Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1",
            Backend::Postgres => {
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables
                  WHERE table_schema = current_schema() ORDER BY 1"
            }
        };
        let names = db
            .prepare(sql)
            .unwrap()
            .query_map([], |r| r.get::<String>(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        names
    }

    #[test]
    fn a_refused_copy_writes_nothing_not_even_the_schema() {
        let (from, to) = (TestDb::sqlite(), TestDb::new());
        fill(&from);
        outside(&to.location(), "CREATE TABLE app_users (id BIGINT)");
        let err = copy(&from.location(), &to.location()).unwrap_err();
        assert!(err.to_string().contains("table app_users"), "{err}");
        assert!(err.to_string().contains("nothing was copied"), "{err}");
        assert_eq!(table_names(&to.location()), ["app_users"]);
    }
}
