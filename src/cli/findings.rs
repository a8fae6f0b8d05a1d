//! `scansync findings`: what the store holds, filtered.

use super::runs::{open_store, OutputFormat};
use super::{table, Global};
use crate::config::StoreLocation;
use crate::export::{parse_state, state_word};
use crate::finding::Severity;
use crate::store::{FindingFilter, FindingRow, FindingState};
use serde_json::Value;
use std::io::{self, Write};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only findings of this scan (repeatable)
    #[arg(long = "scan", value_name = "NAME")]
    pub scans: Vec<String>,
    /// Only findings in this state (repeatable): new, open, fixed, reopened, false_positive, accepted
    #[arg(long = "state", value_name = "STATE", value_parser = parse_state)]
    pub states: Vec<FindingState>,
    /// Only findings of this severity or worse: critical, high, medium, low, info
    #[arg(long, value_name = "SEVERITY")]
    pub severity: Option<Severity>,
    /// Only the finding with this id (repeatable; the ID column)
    #[arg(long = "id", value_name = "ID")]
    pub ids: Vec<i64>,
    /// Only findings whose fingerprint starts with this (repeatable; at least 8 hex digits)
    #[arg(long = "fingerprint", value_name = "HEX", value_parser = parse_fingerprint)]
    pub fingerprints: Vec<String>,
    /// table, or json (JSON Lines: one finding per line)
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Read this store instead of the config's [store]: a SQLite file, or a postgres:// url
    /// (password from $PGPASSWORD)
    #[arg(long, value_name = "FILE|URL", value_parser = super::StoreArg)]
    pub store: Option<StoreLocation>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let store = open_store(global, args.store.as_ref())?;
    let filter = FindingFilter {
        scans: args.scans,
        states: args.states,
        min_severity: args.severity,
        ids: args.ids,
        fingerprints: args.fingerprints,
    };
    let mut out = io::BufWriter::new(io::stdout().lock());
    let outcome = match args.format {
        // Streamed: one row in memory at a time, however large the store.
        OutputFormat::Json => store.for_each_finding(&filter, |row| -> anyhow::Result<()> {
            writeln!(out, "{}", finding_json(&row))?;
            Ok(())
        }),
        OutputFormat::Table => {
            let mut rows = Vec::new();
            store.for_each_finding(&filter, |row| -> anyhow::Result<()> {
                rows.push(table_row(&row));
                Ok(())
            })?;
            write_table(&mut out, &rows).map_err(anyhow::Error::from)
        }
    };
    match outcome {
        Err(e) if is_broken_pipe(&e) => return Ok(0),
        other => other?,
    }
    ignore_broken_pipe(out.flush())?;
    Ok(0)
}

/// A fingerprint or a prefix of one, as `--fingerprint` takes it (lower case, as stored).
pub(crate) fn parse_fingerprint(word: &str) -> Result<String, String> {
    let min = crate::store::MIN_FINGERPRINT_PREFIX;
    if word.len() < min || word.len() > 32 || !word.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "\"{word}\" is not a fingerprint: {min} to 32 hex digits (the FINGERPRINT column)"
        ));
    }
    Ok(word.to_ascii_lowercase())
}

/// `scansync findings | head` closes the pipe early; that is not an error.
pub(crate) fn ignore_broken_pipe(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// One finding as a JSON Lines record: the one mapping, shared with `export`.
pub fn finding_json(r: &FindingRow) -> Value {
    Value::Object(crate::export::finding_json(r, false, false))
}

fn table_row(r: &FindingRow) -> Vec<String> {
    vec![
        r.id.to_string(),
        r.fingerprint.chars().take(12).collect(),
        r.scan.clone(),
        r.finding.severity.as_str().to_string(),
        state_word(r.state).to_string(),
        table::truncate(&r.finding.title, 50),
        table::truncate(&r.finding.location.display(), 50),
        r.last_seen.clone(),
        table::truncate(&triage_cell(r), 40),
    ]
}

/// Who triaged the finding and until when: `dana`, `rule:tests until 2027-01-31`, `vendor`.
pub(crate) fn triage_cell(r: &FindingRow) -> String {
    let mut cell = r.triage.who().unwrap_or_default();
    if let Some(until) = &r.triage.until {
        if !cell.is_empty() {
            cell.push(' ');
        }
        cell.push_str(&format!("until {until}"));
    }
    cell
}

fn write_table(out: &mut impl Write, rows: &[Vec<String>]) -> io::Result<()> {
    table::write(
        out,
        &[
            "ID",
            "FINGERPRINT",
            "SCAN",
            "SEVERITY",
            "STATE",
            "TITLE",
            "LOCATION",
            "LAST SEEN",
            "TRIAGE",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Finding, Location};

    fn row() -> FindingRow {
        FindingRow {
            id: 12,
            fingerprint: "0123456789abcdef0123456789abcdef".into(),
            scan: "web".into(),
            instance: "ct".into(),
            vendor: "codethreat".into(),
            bind_to: "shop".into(),
            state: FindingState::FalsePositive,
            finding: Finding {
                vendor_id: None,
                title: "SQL injection".into(),
                severity: Severity::High,
                vendor_status: Some("Open".into()),
                cwe: Some("CWE-89".into()),
                owasp: None,
                rule_id: Some("sqli".into()),
                location: Location::Code {
                    path: "src/db.rs".into(),
                    start_line: Some(40),
                    end_line: Some(42),
                },
                description: None,
                remediation: None,
                vendor_url: None,
                vendor_first_seen: None,
                vendor_last_seen: None,
                raw: "{}".into(),
                verdict: None,
            },
            first_seen: "2026-03-01T12:00:00Z".into(),
            last_seen: "2026-03-02T12:00:00Z".into(),
            times_seen: 3,
            triage: crate::store::Triage {
                state: Some(FindingState::FalsePositive),
                source: Some(crate::store::TriageSource::Local),
                reason: Some("constant input".into()),
                by: Some("dana".into()),
                ..Default::default()
            },
        }
    }

    #[test]
    fn finding_json_carries_the_documented_fields() {
        let v = finding_json(&row());
        for key in [
            "fingerprint",
            "scan",
            "vendor",
            "severity",
            "state",
            "title",
            "location",
            "first_seen",
            "last_seen",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["state"], "false_positive");
        assert_eq!(v["severity"], "high");
        assert_eq!(v["location"], "src/db.rs:40-42");
        assert_eq!(v["times_seen"], 3);
    }

    #[test]
    fn every_state_word_parses_back_to_its_state() {
        for s in FindingState::ALL {
            assert_eq!(parse_state(state_word(s)).unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), state_word(s));
        }
    }

    #[test]
    fn unknown_state_is_rejected_with_the_list_of_states() {
        let e = parse_state("closed").unwrap_err();
        assert!(e.contains("closed") && e.contains("false_positive"), "{e}");
    }

    #[test]
    fn table_shows_a_short_fingerprint_and_the_location() {
        let mut out = Vec::new();
        write_table(&mut out, &[table_row(&row())]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("0123456789ab  web"), "{text}");
        assert!(text.contains("src/db.rs:40-42"), "{text}");
        assert!(
            text.contains("TRIAGE") && text.ends_with("dana\n"),
            "{text}"
        );
    }

    #[test]
    fn fingerprint_filters_need_eight_hex_digits() {
        assert_eq!(parse_fingerprint("0123ABCD").unwrap(), "0123abcd");
        assert!(parse_fingerprint("0123abc").is_err());
        assert!(parse_fingerprint("0123abcz").is_err());
    }
}
