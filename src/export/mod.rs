//! Exports of the store's findings: JSON Lines, CSV and SARIF 2.1.0.
//!
//! Every format is a streaming writer ([`Exporter`]) fed one [`FindingRow`] at a time, so an
//! export of a million findings holds one row (plus, for SARIF, the run's rule table) in
//! memory, never the whole result set. [`export_store`] feeds it from one
//! [`Store::for_each_finding`] query, which is also one consistent snapshot of the store.
//! [`write_atomically`] puts the output in place only once it is complete.
//!
//! [`finding_json`] is the one mapping of a row to JSON: `findings --format json`, the JSON
//! Lines export and the CSV columns all come from it, so the formats cannot drift apart.

mod csv;
mod jsonl;
mod output;
mod sarif;

pub use self::csv::{neutralise_formula, CsvWriter, CSV_COLUMNS};
pub use self::jsonl::JsonlWriter;
pub use self::output::write_atomically;
pub use self::sarif::SarifWriter;

use crate::finding::Location;
use crate::store::{FindingFilter, FindingRow, FindingState, Store, StoreError};
use serde_json::{Map, Value};
use std::io::Write;

/// Errors while exporting. Each says what failed and what to try.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the export failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing the CSV export failed: {0}")]
    Csv(#[from] ::csv::Error),
    #[error("cannot write {path}: {source}; check that its folder exists and is writable")]
    Output {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The export formats `scansync export --format` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line
    Jsonl,
    /// RFC 4180 CSV with a header row, formula cells neutralised
    Csv,
    /// SARIF 2.1.0, one run per vendor (GitHub code scanning reads it)
    Sarif,
}

/// The lifecycle word used in the store, the CLI filters and every export (the store's own).
pub fn state_word(state: FindingState) -> &'static str {
    state.as_str()
}

/// Parses a lifecycle word as the CLI's `--state` takes it.
pub fn parse_state(word: &str) -> Result<FindingState, String> {
    word.parse()
}

/// The one JSON shape of a finding row.
///
/// Without `full` it is the `findings --format json` object: `fingerprint`, `scan`, `vendor`,
/// `instance`, `bind_to`, `severity`, `state`, `title`, `location` (the display string),
/// `first_seen`, `last_seen`, `times_seen`, and (added with triage) `id` and the triage the
/// row remembers: `triage_reason`, `triage_by` (the person, `rule:NAME` or `vendor`) and
/// `triage_until` (`YYYY-MM-DD`), `null` when there is none. Fields are only ever added. `full` adds what an export needs to act on a
/// finding without the vendor's UI: `cwe`, `owasp`, `rule_id`, `description`, `remediation`,
/// `vendor_url` (`null` when the vendor gave none, so every object has the same keys).
/// `raw` adds the vendor's own JSON under `raw`, parsed; a payload that is not JSON (it
/// should always be) is kept as a string rather than dropped.
pub fn finding_json(row: &FindingRow, full: bool, raw: bool) -> Map<String, Value> {
    let f = &row.finding;
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("fingerprint", row.fingerprint.clone().into());
    put("scan", row.scan.clone().into());
    put("vendor", row.vendor.clone().into());
    put("instance", row.instance.clone().into());
    put("bind_to", row.bind_to.clone().into());
    put("severity", f.severity.as_str().into());
    put("state", state_word(row.state).into());
    put("title", f.title.clone().into());
    put("location", f.location.display().into());
    put("first_seen", row.first_seen.clone().into());
    put("last_seen", row.last_seen.clone().into());
    put("times_seen", row.times_seen.into());
    let opt = |v: Option<String>| v.map_or(Value::Null, Value::String);
    put("id", row.id.into());
    put("triage_reason", opt(row.triage.reason.clone()));
    put("triage_by", opt(row.triage.who()));
    put("triage_until", opt(row.triage.until.clone()));
    if full {
        let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        put("cwe", opt(&f.cwe));
        put("owasp", opt(&f.owasp));
        put("rule_id", opt(&f.rule_id));
        put("description", opt(&f.description));
        put("remediation", opt(&f.remediation));
        put("vendor_url", opt(&f.vendor_url));
    }
    if raw {
        let parsed = serde_json::from_str(&f.raw).unwrap_or_else(|_| Value::String(f.raw.clone()));
        put("raw", parsed);
    }
    m
}

/// What an export writes besides the format itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportOptions {
    /// Add the vendor's raw JSON (JSON Lines only: CSV cells and SARIF results are read by
    /// people and tools that have no use for it).
    pub raw: bool,
}

/// A streaming writer for one format. Feed rows with [`Exporter::row`], then call
/// [`Exporter::finish`], which completes the document (SARIF's runs, CSV's buffers) and
/// hands the writer back so the caller can flush and sync it.
pub enum Exporter<W: Write> {
    Jsonl(JsonlWriter<W>),
    /// Boxed: the CSV writer carries its own buffers and would make every variant large.
    Csv(Box<CsvWriter<W>>),
    Sarif(SarifWriter<W>),
}

impl<W: Write> Exporter<W> {
    pub fn new(format: Format, opts: ExportOptions, out: W) -> Result<Exporter<W>, ExportError> {
        Ok(match format {
            Format::Jsonl => Exporter::Jsonl(JsonlWriter::new(out, opts.raw)),
            Format::Csv => Exporter::Csv(Box::new(CsvWriter::new(out)?)),
            Format::Sarif => Exporter::Sarif(SarifWriter::new(out)),
        })
    }

    pub fn row(&mut self, row: &FindingRow) -> Result<(), ExportError> {
        match self {
            Exporter::Jsonl(w) => w.row(row),
            Exporter::Csv(w) => w.row(row),
            Exporter::Sarif(w) => w.row(row),
        }
    }

    pub fn finish(self) -> Result<W, ExportError> {
        match self {
            Exporter::Jsonl(w) => w.finish(),
            Exporter::Csv(w) => w.finish(),
            Exporter::Sarif(w) => w.finish(),
        }
    }
}

/// Writes every row the filter selects, in the store's order, and returns how many were
/// written along with the writer.
pub fn export_store<W: Write>(
    store: &Store,
    filter: &FindingFilter,
    format: Format,
    opts: ExportOptions,
    out: W,
) -> Result<(u64, W), ExportError> {
    let mut exporter = Exporter::new(format, opts, out)?;
    let mut count = 0u64;
    store.for_each_finding(filter, |row| -> Result<(), ExportError> {
        exporter.row(&row)?;
        count += 1;
        Ok(())
    })?;
    Ok((count, exporter.finish()?))
}

/// Writes rows from any source (tests, or a caller that already holds them).
pub fn export_rows<W: Write>(
    rows: impl IntoIterator<Item = FindingRow>,
    format: Format,
    opts: ExportOptions,
    out: W,
) -> Result<W, ExportError> {
    let mut exporter = Exporter::new(format, opts, out)?;
    for row in rows {
        exporter.row(&row)?;
    }
    exporter.finish()
}

/// The line numbers worth reporting: SARIF and editors count from 1, and an end before the
/// start is a vendor error that is better dropped than passed on.
pub(crate) fn line_range(location: &Location) -> Option<(u32, Option<u32>)> {
    match location {
        Location::Code {
            start_line: Some(s),
            end_line,
            ..
        } if *s >= 1 => Some((*s, end_line.filter(|e| *e >= *s))),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod testrows {
    //! Hand-built rows for the unit tests of every format.
    use crate::finding::{Finding, Location, Severity};
    use crate::store::{FindingRow, FindingState};

    pub fn code_row(title: &str) -> FindingRow {
        FindingRow {
            id: 7,
            fingerprint: "0123456789abcdef0123456789abcdef".into(),
            scan: "shop-sast".into(),
            instance: "ct-cloud".into(),
            vendor: "codethreat".into(),
            bind_to: "shop".into(),
            state: FindingState::New,
            finding: Finding {
                vendor_id: Some("66b0c0ffee".into()),
                title: title.into(),
                severity: Severity::High,
                vendor_status: Some("Open".into()),
                cwe: Some("CWE-89".into()),
                owasp: Some("A03:2021".into()),
                rule_id: Some("sql_injection".into()),
                location: Location::Code {
                    path: "src/db.rs".into(),
                    start_line: Some(40),
                    end_line: Some(42),
                },
                description: Some("User input reaches a SQL query.".into()),
                remediation: Some("Use bound parameters.".into()),
                vendor_url: Some("https://cloud.codethreat.com/issue/66b0c0ffee".into()),
                vendor_first_seen: None,
                vendor_last_seen: None,
                raw: r#"{"_id":"66b0c0ffee","severity":"High"}"#.into(),
                verdict: None,
            },
            first_seen: "2026-11-01T10:00:00Z".into(),
            last_seen: "2026-11-20T10:00:00Z".into(),
            times_seen: 3,
            triage: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testrows::code_row;
    use super::*;

    #[test]
    fn findings_json_has_exactly_the_list_fields() {
        let m = finding_json(&code_row("SQL injection"), false, false);
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        let mut want = vec![
            "fingerprint",
            "scan",
            "vendor",
            "instance",
            "bind_to",
            "severity",
            "state",
            "title",
            "location",
            "first_seen",
            "last_seen",
            "times_seen",
            "id",
            "triage_reason",
            "triage_by",
            "triage_until",
        ];
        want.sort();
        assert_eq!(keys, want);
        assert_eq!(m["location"], "src/db.rs:40-42");
        assert_eq!(m["state"], "new");
        assert_eq!(m["times_seen"], 3);
    }

    #[test]
    fn full_json_adds_export_fields_as_null_when_absent() {
        let mut row = code_row("x");
        row.finding.owasp = None;
        let m = finding_json(&row, true, false);
        assert_eq!(m["cwe"], "CWE-89");
        assert_eq!(m["owasp"], Value::Null);
        assert_eq!(m["rule_id"], "sql_injection");
        assert!(m.contains_key("vendor_url") && !m.contains_key("raw"));
    }

    #[test]
    fn raw_is_embedded_as_parsed_json_and_kept_as_text_if_not_json() {
        let mut row = code_row("x");
        let m = finding_json(&row, true, true);
        assert_eq!(m["raw"]["_id"], "66b0c0ffee");
        row.finding.raw = "not json".into();
        assert_eq!(finding_json(&row, true, true)["raw"], "not json");
    }

    #[test]
    fn every_state_word_parses_back() {
        for s in FindingState::ALL {
            assert_eq!(parse_state(state_word(s)), Ok(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                Value::String(state_word(s).into())
            );
        }
        assert!(parse_state("closed").unwrap_err().contains("one of new"));
    }

    #[test]
    fn line_range_drops_zero_lines_and_backwards_ends() {
        let loc = |s, e| Location::Code {
            path: "a".into(),
            start_line: s,
            end_line: e,
        };
        assert_eq!(line_range(&loc(Some(4), Some(6))), Some((4, Some(6))));
        assert_eq!(line_range(&loc(Some(4), Some(2))), Some((4, None)));
        assert_eq!(line_range(&loc(Some(0), Some(2))), None);
        assert_eq!(line_range(&loc(None, Some(2))), None);
    }
}
