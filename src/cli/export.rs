//! `scansync export --format jsonl|csv|sarif [--scan NAME]… [--state WORD]… [--severity WORD]
//! [--output PATH] [--raw]`: the store's findings as a file other tools read.

use super::Global;
use crate::config::Config;
use crate::export::{export_store, parse_state, write_atomically, ExportOptions, Format};
use crate::finding::Severity;
use crate::store::{FindingFilter, FindingState, Store};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output format
    #[arg(long, value_enum)]
    pub format: Format,
    /// Only this scan (repeatable); default: every scan
    #[arg(long = "scan", value_name = "NAME")]
    pub scans: Vec<String>,
    /// Only findings in this state (repeatable): new, open, fixed, reopened, false_positive,
    /// accepted; default: every state
    #[arg(long = "state", value_name = "WORD", value_parser = parse_state)]
    pub states: Vec<FindingState>,
    /// Only this severity or worse: critical, high, medium, low, info
    #[arg(long, value_name = "WORD")]
    pub severity: Option<Severity>,
    /// Write here instead of stdout; the file is replaced only once the export is complete
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Add each finding's raw vendor JSON (jsonl only)
    #[arg(long)]
    pub raw: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    if args.raw && args.format != Format::Jsonl {
        anyhow::bail!("--raw only applies to --format jsonl (CSV and SARIF have no place for the vendor's JSON)");
    }
    let path = Config::resolve_path(global.config.as_deref());
    let config = Config::load(&path, crate::vendors::REGISTRY)?;
    let location = config.store.location.clone();
    // Store reads block; keep them off the async workers.
    tokio::task::spawn_blocking(move || export(&location, args)).await?
}

fn export(location: &crate::config::StoreLocation, args: Args) -> anyhow::Result<u8> {
    let store = Store::open_read_only_at(location)?;
    let filter = FindingFilter {
        scans: args.scans,
        states: args.states,
        min_severity: args.severity,
        ..FindingFilter::default()
    };
    let opts = ExportOptions { raw: args.raw };
    let count = match &args.output {
        Some(out) => {
            let count = write_atomically(out, |w| {
                export_store(&store, &filter, args.format, opts, w).map(|(n, _)| n)
            })?;
            eprintln!("exported {count} findings to {}", out.display());
            count
        }
        None => {
            let stdout = std::io::stdout().lock();
            let (count, mut w) = export_store(
                &store,
                &filter,
                args.format,
                opts,
                std::io::BufWriter::new(stdout),
            )?;
            w.flush().context("writing the export to stdout")?;
            count
        }
    };
    tracing::debug!(count, "export finished");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        let cli = Cli::try_parse_from(["scansync", "export"].iter().chain(args))?;
        match cli.command {
            Command::Export(a) => Ok(a),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn filters_and_output_parse_into_the_store_filter_types() {
        let a = parse(&[
            "--format",
            "sarif",
            "--scan",
            "a",
            "--scan",
            "b",
            "--state",
            "new",
            "--state",
            "false_positive",
            "--severity",
            "high",
            "--output",
            "out.sarif",
        ])
        .unwrap();
        assert_eq!(a.format, Format::Sarif);
        assert_eq!(a.scans, ["a", "b"]);
        assert_eq!(a.states, [FindingState::New, FindingState::FalsePositive]);
        assert_eq!(a.severity, Some(Severity::High));
        assert_eq!(a.output, Some(PathBuf::from("out.sarif")));
        assert!(!a.raw);
    }

    #[test]
    fn format_is_required_and_bad_words_are_rejected_with_the_choices() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--format", "xml"]).is_err());
        let e = parse(&["--format", "csv", "--state", "closed"]).unwrap_err();
        assert!(e.to_string().contains("one of new"), "{e}");
        let e = parse(&["--format", "csv", "--severity", "severe"]).unwrap_err();
        assert!(e.to_string().contains("critical"), "{e}");
    }
}
