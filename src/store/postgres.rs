//! Opening the store on PostgreSQL (`[store] url`): the connection with its TLS, and the
//! schema's versions there. What the store does once open is the same code as on SQLite
//! (`db.rs` says how).
//!
//! TLS verifies the server's certificate and name whenever it is used: no `sslmode`,
//! `require`, `verify-ca` and `verify-full` all mean a verified connection here (libpq's
//! `require` does not verify; scansync never connects to an unverified server it was told
//! to reach over TLS), `disable` none (a socket on loopback); `allow` and `prefer` are
//! refused with the config (`config::pg_driver_config`). The roots are the system's, or
//! `[store] ca_file`.

use super::db::{Db, Error as DbError};
use super::{StoreError, MIGRATIONS_POSTGRES};
pub use crate::config::PgTarget;
use crate::config::PgTls;
use std::path::Path;
use std::sync::Arc;

fn tls_connector(
    ca_file: Option<&Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in crate::tls::ca_certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Connects; the error names the server (never the password) and what went wrong.
pub fn connect(target: &PgTarget) -> Result<postgres::Client, StoreError> {
    let invalid =
        |detail: String| StoreError::Invalid(format!("store {}: {detail}", target.shown()));
    let (tls, mut config) = crate::config::pg_driver_config(&target.url).map_err(invalid)?;
    if let Some(password) = &target.password {
        config.password(password.expose());
    }
    if let Some(schema) = &target.schema {
        config.options(&format!("-c search_path={schema}"));
    }
    config.application_name("scansync");
    config.connect_timeout(std::time::Duration::from_secs(10));
    // A server that vanished (a cut cable, a paused VM) is noticed in about a minute
    // instead of the kernel's two hours.
    config.keepalives_idle(std::time::Duration::from_secs(30));
    let open = |source: postgres::Error| StoreError::Open {
        path: target.shown(),
        source: DbError::Postgres(source),
    };
    let client = if tls == PgTls::Disable {
        super::db::off_runtime(|| config.connect(postgres::NoTls)).map_err(open)?
    } else {
        let connector = tls_connector(target.ca_file.as_deref()).map_err(invalid)?;
        super::db::off_runtime(|| config.connect(connector)).map_err(open)?
    };
    Ok(client)
}

/// A session for the store: connected now, and connected again the same way (read-only
/// too, when asked) whenever the server closes it, so a daemon outlives a database restart.
pub fn session(target: &PgTarget, read_only: bool) -> Result<Db, StoreError> {
    const READ_ONLY: &str = "SET default_transaction_read_only = on";
    let open = move |target: &PgTarget| -> Result<postgres::Client, StoreError> {
        let mut client = connect(target)?;
        if read_only {
            super::db::off_runtime(|| client.batch_execute(READ_ONLY)).map_err(|source| {
                StoreError::Open {
                    path: target.shown(),
                    source: DbError::Postgres(source),
                }
            })?;
        }
        Ok(client)
    };
    let client = open(target)?;
    let again = target.clone();
    Ok(Db::postgres(
        client,
        Some(Box::new(move || open(&again).map_err(|e| e.to_string()))),
    ))
}

/// The table that holds the schema version (SQLite keeps it in `PRAGMA user_version`).
const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS scansync_schema (
    version BIGINT NOT NULL
)";

/// The advisory lock migrations take, so that nodes starting together migrate once.
const MIGRATION_LOCK: i64 = 0x7363_616e_6d69_6772;

/// The schema version of the database (0 when scansync never wrote it).
pub fn version(db: &Db) -> Result<i64, DbError> {
    let exists: i64 = db.query_row(
        "SELECT count(*) FROM information_schema.tables
          WHERE table_schema = current_schema() AND table_name = 'scansync_schema'",
        super::db::params![],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Ok(0);
    }
    db.query_row(
        "SELECT coalesce(max(version), 0) FROM scansync_schema",
        super::db::params![],
        |r| r.get(0),
    )
}

/// Brings the schema up to date (the daemon and writing commands only), each migration in
/// one transaction under [`MIGRATION_LOCK`].
pub fn migrate(db: &mut Db, shown: &str) -> Result<(), StoreError> {
    let known = super::latest(MIGRATIONS_POSTGRES);
    loop {
        let tx = db.write_transaction()?;
        tx.execute_batch(&format!(
            "SELECT pg_advisory_xact_lock({MIGRATION_LOCK}); {VERSION_TABLE}"
        ))?;
        let found = version(&tx)?;
        if found > known {
            return Err(StoreError::SchemaTooNew {
                path: shown.to_owned(),
                found,
                known,
            });
        }
        let Some((next, sql)) = MIGRATIONS_POSTGRES.iter().find(|(v, _)| *v > found) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!(
            "DELETE FROM scansync_schema; INSERT INTO scansync_schema (version) VALUES ({next})"
        ))?;
        tx.commit()?;
    }
}
