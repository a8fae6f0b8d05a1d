//! JSON Lines: one [`finding_json`](super::finding_json) object per line, the format for
//! `jq`, log shippers and anything that reads a stream record by record.

use super::{finding_json, ExportError};
use crate::store::FindingRow;
use std::io::Write;

pub struct JsonlWriter<W: Write> {
    out: W,
    raw: bool,
}

impl<W: Write> JsonlWriter<W> {
    pub fn new(out: W, raw: bool) -> JsonlWriter<W> {
        JsonlWriter { out, raw }
    }

    pub fn row(&mut self, row: &FindingRow) -> Result<(), ExportError> {
        // serde_json escapes control characters, so a vendor's newline inside a title can
        // never split a record across lines.
        serde_json::to_writer(&mut self.out, &finding_json(row, true, self.raw))
            .map_err(std::io::Error::from)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<W, ExportError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testrows::code_row;
    use super::*;

    #[test]
    fn one_object_per_line_even_with_newlines_in_text() {
        let mut w = JsonlWriter::new(Vec::new(), false);
        w.row(&code_row("line one\nline two")).unwrap();
        w.row(&code_row("second")).unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["title"], "line one\nline two");
        assert_eq!(first["description"], "User input reaches a SQL query.");
        assert!(first.get("raw").is_none());
    }

    #[test]
    fn raw_flag_adds_the_vendor_payload() {
        let mut w = JsonlWriter::new(Vec::new(), true);
        w.row(&code_row("t")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&w.finish().unwrap()).unwrap();
        assert_eq!(v["raw"]["severity"], "High");
    }
}
