//! Aligned plain-text tables for `findings` and `runs`.

use std::io::{self, Write};

/// Writes `rows` under `headers`, each column as wide as its widest cell (counted in
/// characters, so non-ASCII titles stay aligned), two spaces apart, no trailing blanks.
pub fn write(out: &mut impl Write, headers: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            let pad = w.saturating_sub(cell.chars().count());
            text.extend(std::iter::repeat_n(' ', pad));
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &mut headers.iter().copied())?;
    for row in rows {
        line(out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// Shortens `s` to `max` characters, marking the cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_to_the_widest_cell_without_trailing_blanks() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["1".to_string(), "süccess".to_string(), "x".to_string()],
            vec!["1234".to_string(), "f".to_string(), String::new()],
        ];
        write(&mut out, &["ID", "STATE", "ERR"], &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "ID    STATE    ERR\n1     süccess  x\n1234  f\n");
    }

    #[test]
    fn truncate_marks_the_cut_and_keeps_short_text() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
