//! `scansync webhook test NAME` and `scansync webhook pending`: try a webhook, and see what
//! the outbox still holds.

use super::runs::{open_store, OutputFormat};
use super::{table, Global};
use crate::config::Config;
use crate::config::StoreLocation;
use crate::store::OutboxRow;
use std::io::Write;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: WebhookCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum WebhookCommand {
    /// Send a signed `ping` notification to webhook NAME and print the HTTP status (exit 1 unless 2xx)
    Test(TestArgs),
    /// List the outbox's notifications not delivered yet: pending, or given up (with why)
    Pending(PendingArgs),
}

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// The NAME of a [webhooks.NAME] table
    pub name: String,
}

#[derive(clap::Args, Debug)]
pub struct PendingArgs {
    /// table, or json (JSON Lines: one notification per line)
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Include delivered notifications too
    #[arg(long)]
    pub all: bool,
    /// Read this store instead of the config's [store]: a SQLite file, or a postgres:// url
    /// (password from $PGPASSWORD)
    #[arg(long, value_name = "FILE|URL", value_parser = super::StoreArg)]
    pub store: Option<StoreLocation>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    match args.command {
        WebhookCommand::Test(a) => test(global, a).await,
        WebhookCommand::Pending(a) => pending(global, a),
    }
}

async fn test(global: &Global, args: TestArgs) -> anyhow::Result<u8> {
    let config = Config::load(
        &Config::resolve_path(global.config.as_deref()),
        crate::vendors::REGISTRY,
    )?;
    let outcome = crate::webhooks::send_ping(&config, &args.name).await?;
    let line = match (outcome.status, outcome.delivered()) {
        (Some(_), true) => format!("{}: HTTP {}", args.name, outcome.detail),
        (Some(_), false) => format!("{}: {}", args.name, outcome.detail),
        (None, _) => format!("{}: no answer: {}", args.name, outcome.detail),
    };
    println!("{line} (webhook-id {})", outcome.msg_id);
    Ok(if outcome.delivered() { 0 } else { 1 })
}

fn pending(global: &Global, args: PendingArgs) -> anyhow::Result<u8> {
    let store = open_store(global, args.store.as_ref())?;
    let rows = store.webhook_outbox(args.all)?;
    let mut out = std::io::stdout().lock();
    let written = match args.format {
        OutputFormat::Json => rows.iter().try_for_each(|r| {
            writeln!(
                out,
                "{}",
                serde_json::to_string(r).map_err(std::io::Error::other)?
            )
        }),
        OutputFormat::Table => write_table(&mut out, &rows),
    };
    super::findings::ignore_broken_pipe(written.and_then(|()| out.flush()))?;
    Ok(0)
}

fn write_table(out: &mut impl Write, rows: &[OutboxRow]) -> std::io::Result<()> {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.msg_id.clone(),
                r.webhook.clone(),
                r.event_type.clone(),
                r.run_id.map(|id| id.to_string()).unwrap_or_default(),
                r.state.clone(),
                r.attempts.to_string(),
                r.created_at.clone(),
                r.next_attempt_at.clone().unwrap_or_default(),
                r.last_status.map(|s| s.to_string()).unwrap_or_default(),
                table::truncate(r.last_error.as_deref().unwrap_or(""), 70),
            ]
        })
        .collect();
    table::write(
        out,
        &[
            "WEBHOOK-ID",
            "WEBHOOK",
            "EVENT",
            "RUN",
            "STATE",
            "ATTEMPTS",
            "CREATED",
            "NEXT ATTEMPT",
            "STATUS",
            "LAST ERROR",
        ],
        &cells,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> OutboxRow {
        OutboxRow {
            msg_id: "msg_0123".into(),
            webhook: "siem".into(),
            event_type: "findings.new".into(),
            run_id: Some(7),
            state: "pending".into(),
            attempts: 2,
            created_at: "2026-03-01T12:00:00.000Z".into(),
            next_attempt_at: Some("2026-03-01T12:00:09.000Z".into()),
            last_attempt_at: Some("2026-03-01T12:00:04.000Z".into()),
            last_status: Some(503),
            last_error: Some("HTTP 503 Service Unavailable from https://siem.example/…".into()),
            delivered_at: None,
            gave_up_at: None,
        }
    }

    #[test]
    fn table_shows_one_line_per_notification_with_its_last_status() {
        let mut out = Vec::new();
        write_table(&mut out, &[row()]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("WEBHOOK-ID"), "{text}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            &cells[..9],
            [
                "msg_0123",
                "siem",
                "findings.new",
                "7",
                "pending",
                "2",
                "2026-03-01T12:00:00.000Z",
                "2026-03-01T12:00:09.000Z",
                "503"
            ],
            "{text}"
        );
    }

    #[test]
    fn json_lines_carry_the_documented_fields() {
        let v = serde_json::to_value(row()).unwrap();
        for key in [
            "msg_id",
            "webhook",
            "event_type",
            "run_id",
            "state",
            "attempts",
            "created_at",
            "next_attempt_at",
            "last_status",
            "last_error",
            "delivered_at",
            "gave_up_at",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["last_status"], 503);
    }
}
