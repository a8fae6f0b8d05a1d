//! `scansync store prune`: what `[store] retention` lets go, now (the daemon also prunes by
//! itself, hourly), or with `--dry-run` only counted. `scansync store copy`: a whole store
//! into an empty one (SQLite to PostgreSQL is the upgrade path).

use super::Global;
use crate::config::Config;
use crate::config::StoreLocation;
use crate::store::{CopyReport, PruneReport, Schema, Store};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum StoreCommand {
    /// Delete what [store] retention lets go (old runs, events, delivered notifications,
    /// webhook delivery ids, idle branch scopes); open findings of scans in use never go
    Prune(PruneArgs),
    /// Copy a whole store into an empty one (SQLite to PostgreSQL), same ids, counts verified
    ///
    /// Every table (findings, events, runs, webhook notifications, leases, delivery ids) is
    /// copied with the same ids in one transaction, and each table's row count is compared
    /// on both sides before it commits: a failure leaves the destination empty. A destination
    /// that holds any row is refused. Stop the daemon first: a store it is writing is read as
    /// of one moment, and what it writes afterwards is not in the copy.
    Copy(CopyArgs),
}

#[derive(clap::Args, Debug)]
pub struct CopyArgs {
    /// The store to copy: a SQLite file, or a postgres:// url (password from $PGPASSWORD);
    /// opened read-only, it must be at this scansync's schema version
    #[arg(long, value_name = "FILE|URL", value_parser = super::StoreArg)]
    pub from: StoreLocation,
    /// The store to copy into: a SQLite file, or a postgres:// url (password from
    /// $PGPASSWORD); created and migrated if need be, refused unless every table is empty
    #[arg(long, value_name = "FILE|URL", value_parser = super::StoreArg)]
    pub to: StoreLocation,
}

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Count what would go; change nothing (the store is opened read-only)
    #[arg(long)]
    pub dry_run: bool,
    /// Prune this SQLite file instead of the config's [store] path (with the config's
    /// retention; the defaults only when there is no config file at all)
    #[arg(long, value_name = "FILE|URL", value_parser = super::StoreArg)]
    pub store: Option<StoreLocation>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    match args.command {
        StoreCommand::Prune(args) => prune(global, args).await,
        StoreCommand::Copy(args) => copy(args).await,
    }
}

async fn copy(args: CopyArgs) -> anyhow::Result<u8> {
    let (from, to) = (args.from.clone(), args.to.clone());
    let report = tokio::task::spawn_blocking(move || crate::store::copy(&from, &to)).await??;
    print!("{}", copy_text(&report, &args.from, &args.to));
    Ok(0)
}

fn copy_text(r: &CopyReport, from: &StoreLocation, to: &StoreLocation) -> String {
    let mut out = format!("copied {from} to {to}:\n");
    for (table, rows) in &r.tables {
        out.push_str(&format!("{rows:>9}  {table}\n"));
    }
    out.push_str("verified: every table has as many rows in the copy as in the source\n");
    out
}

async fn prune(global: &Global, args: PruneArgs) -> anyhow::Result<u8> {
    let config_path = Config::resolve_path(global.config.as_deref());
    let (location, retention) = match (&args.store, super::runs::store_config_from(&config_path)) {
        (Some(p), Ok(c)) => (p.clone(), c.retention),
        // A config that is there but wrong is not a reason to prune by other rules.
        (Some(_), Err(e)) if config_path.exists() => return Err(e),
        (Some(p), Err(_)) => {
            eprintln!(
                "note: no config at {}: pruning {} with the default retention",
                config_path.display(),
                p
            );
            (p.clone(), Default::default())
        }
        (None, c) => {
            let c = c?;
            (c.location, c.retention)
        }
    };
    let report = if args.dry_run {
        Store::open_read_only_at(&location)?.prune_preview(&retention)?
    } else {
        // The store as it is: only the daemon, `sync` and `scan` create or migrate one.
        let mut store = Store::open_for_writing(&location, Schema::Existing)?;
        tokio::task::spawn_blocking(move || store.prune(&retention)).await??
    };
    print!("{}", report_text(&report, args.dry_run));
    Ok(0)
}

fn report_text(r: &PruneReport, dry_run: bool) -> String {
    let verb = if dry_run { "would go" } else { "deleted" };
    let rows = [
        ("runs", r.runs),
        ("fixed findings", r.fixed_findings),
        ("finding events", r.events),
        ("webhook notifications", r.notifications),
        ("webhook delivery ids", r.webhook_deliveries),
        ("branch scopes", r.branch_scopes),
        ("findings of those branch scopes", r.branch_findings),
        ("other rows of those branch scopes", r.branch_rows),
    ];
    let mut out = String::new();
    for (what, n) in rows {
        out.push_str(&format!("{n:>9}  {what} {verb}\n"));
    }
    if dry_run {
        out.push_str("(runs: at least; more become free once their events and notifications go)\n");
    }
    out
}
