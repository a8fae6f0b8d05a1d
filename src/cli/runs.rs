//! `scansync runs`: recent sync runs, newest first.

use super::{table, Global};
use crate::config::Config;
use crate::config::StoreLocation;
use crate::store::{RunRow, RunState, Store};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// `--format`: a table for people, JSON Lines for scripts.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only runs of this scan (repeatable)
    #[arg(long = "scan", value_name = "NAME")]
    pub scans: Vec<String>,
    /// How many runs to show
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// table, or json (JSON Lines: one run per line)
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Read this store instead of the config's [store]: a SQLite file, or a postgres:// url
    /// (password from $PGPASSWORD)
    #[arg(long, value_name = "FILE|URL", value_parser = super::StoreArg)]
    pub store: Option<StoreLocation>,
}

/// The store the read-only commands look at: `--store`, else the config's `[store] path`.
/// Only that one key is read, so `findings` and `runs` work for an operator who cannot read
/// the tokens (systemd credentials exist only inside the service).
pub(crate) fn open_store(global: &Global, store: Option<&StoreLocation>) -> anyhow::Result<Store> {
    let location = match store {
        Some(p) => p.clone(),
        None => store_location_from_config(&Config::resolve_path(global.config.as_deref()))?,
    };
    Ok(Store::open_read_only_at(&location)?)
}

pub(crate) fn store_location_from_config(config: &Path) -> anyhow::Result<StoreLocation> {
    Ok(store_config_from(config)?.location)
}

/// The config's `[store]` table alone (path resolved), read without validating the rest.
pub(crate) fn store_config_from(config: &Path) -> anyhow::Result<crate::config::StoreConfig> {
    use anyhow::Context;
    crate::config::Config::store_only(config).context(
        "no usable [store] in the config (the commands that only read the store also take --store FILE)",
    )
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let store = open_store(global, args.store.as_ref())?;
    let rows = if args.scans.is_empty() {
        store.runs(None, args.limit)?
    } else {
        let mut rows = Vec::new();
        for scan in &args.scans {
            rows.extend(store.runs(Some(scan), args.limit)?);
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.id));
        rows.truncate(args.limit);
        rows
    };
    let mut out = std::io::stdout().lock();
    let written = match args.format {
        OutputFormat::Json => rows
            .iter()
            .try_for_each(|r| writeln!(out, "{}", run_json(r))),
        OutputFormat::Table => write_table(&mut out, &rows),
    };
    super::findings::ignore_broken_pipe(written.and_then(|()| out.flush()))?;
    Ok(0)
}

/// The word a run state is stored and printed as.
pub fn run_state_word(state: RunState) -> &'static str {
    match state {
        RunState::Running => "running",
        RunState::Succeeded => "succeeded",
        RunState::Failed => "failed",
        RunState::Interrupted => "interrupted",
        RunState::TimedOut => "timed_out",
    }
}

/// One run as a JSON Lines record. Field names are a fixed interface (scripts, exports).
pub fn run_json(r: &RunRow) -> Value {
    json!({
        "id": r.id,
        "scan": r.scan,
        "instance": r.instance,
        "vendor": r.vendor,
        "bind_to": r.bind_to,
        "branch": r.branch,
        "trigger": r.trigger,
        "state": run_state_word(r.state),
        "vendor_scan_id": r.vendor_scan_id,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "seen": r.counts.seen,
        "new": r.counts.new,
        "open": r.counts.open,
        "reopened": r.counts.reopened,
        "fixed": r.counts.fixed,
        "missing": r.counts.missing,
        "pages": r.counts.pages,
        "error": r.error,
    })
}

fn write_table(out: &mut impl Write, rows: &[RunRow]) -> std::io::Result<()> {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.scan.clone(),
                run_state_word(r.state).to_string(),
                r.trigger.clone(),
                r.started_at.clone(),
                r.finished_at.clone().unwrap_or_default(),
                r.counts.seen.to_string(),
                r.counts.new.to_string(),
                r.counts.fixed.to_string(),
                r.counts.missing.to_string(),
                r.counts.reopened.to_string(),
                table::truncate(r.error.as_deref().unwrap_or(""), 60),
            ]
        })
        .collect();
    table::write(
        out,
        &[
            "ID", "SCAN", "STATE", "TRIGGER", "STARTED", "FINISHED", "SEEN", "NEW", "FIXED",
            "MISSING", "REOPENED", "ERROR",
        ],
        &cells,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RunCounts;

    fn row() -> RunRow {
        RunRow {
            id: 7,
            scan: "web".into(),
            instance: "ct".into(),
            vendor: "codethreat".into(),
            bind_to: "shop".into(),
            branch: Some("main".into()),
            trigger: "schedule".into(),
            state: RunState::TimedOut,
            vendor_scan_id: Some("s-1".into()),
            started_at: "2026-03-01T12:00:00Z".into(),
            finished_at: Some("2026-03-01T14:00:00Z".into()),
            counts: RunCounts {
                seen: 10,
                new: 2,
                open: 8,
                reopened: 1,
                fixed: 3,
                missing: 0,
                pages: 1,
            },
            error: Some("vendor scan still running after 2h".into()),
        }
    }

    #[test]
    fn run_json_carries_the_documented_fields_with_snake_case_state() {
        let v = run_json(&row());
        for key in [
            "id",
            "scan",
            "state",
            "started_at",
            "finished_at",
            "new",
            "fixed",
            "reopened",
            "error",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["state"], "timed_out");
        assert_eq!(v["new"], 2);
        assert_eq!(v["fixed"], 3);
        assert_eq!(v["reopened"], 1);
        assert_eq!(v["vendor_scan_id"], "s-1");
    }

    #[test]
    fn run_state_words_match_the_serde_names() {
        for s in [
            RunState::Running,
            RunState::Succeeded,
            RunState::Failed,
            RunState::Interrupted,
            RunState::TimedOut,
        ] {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                Value::from(run_state_word(s))
            );
        }
    }

    #[test]
    fn store_path_is_read_without_resolving_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            "[store]\npath = \"/var/lib/scansync/s.db\"\n\n[instances.ct]\nvendor = \"codethreat\"\ncredential = \"absent\"\n",
        )
        .unwrap();
        assert_eq!(
            store_location_from_config(&config).unwrap(),
            StoreLocation::Sqlite("/var/lib/scansync/s.db".into())
        );
    }

    #[test]
    fn missing_config_error_suggests_store_flag() {
        let e = store_location_from_config(Path::new("/nonexistent/scansync.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--store"), "{e}");
    }

    #[test]
    fn table_has_one_line_per_run_under_a_header() {
        let mut out = Vec::new();
        write_table(&mut out, &[row()]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID  SCAN"));
        assert!(lines[1].contains("timed_out"));
    }
}
