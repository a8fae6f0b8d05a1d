//! Aligned plain-text tables for `findings`, `runs`, `projects` and `webhook`.

use crate::display::{clean, fit, width};
use std::io::{self, Write};

/// Writes `rows` under `headers`, each column as wide as its widest cell in terminal
/// columns (a CJK title takes two per character), two spaces apart, no trailing blanks.
/// Cells are [`clean`]ed first: they hold vendor text, whose control characters must not
/// reach the terminal.
pub fn write(out: &mut impl Write, headers: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| clean(c).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            let pad = w.saturating_sub(width(cell));
            text.extend(std::iter::repeat_n(' ', pad));
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &mut headers.iter().copied())?;
    for row in &rows {
        line(out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// Shortens `s` to `max` terminal columns, marking the cut with `…`; control characters
/// are escaped first, so the cut counts what will be shown.
pub fn truncate(s: &str, max: usize) -> String {
    fit(&clean(s), max)
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
    fn wide_characters_align_and_control_characters_cannot_reach_the_terminal() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["漢字のタイトル".to_string(), "high".to_string()],
            vec!["evil\u{1b}[2J\ttitle".to_string(), "low".to_string()],
            vec!["plain".to_string(), "info".to_string()],
        ];
        write(&mut out, &["TITLE", "SEV"], &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\u{1b}') && !text.contains('\t'), "{text:?}");
        assert_eq!(
            text,
            "TITLE                 SEV\n\
             漢字のタイトル        high\n\
             evil\\u{1b}[2J\\ttitle  low\n\
             plain                 info\n"
        );
        // Every SEV column starts at the same terminal column.
        for line in text.lines() {
            let cut = line.rfind("  ").unwrap() + 2;
            assert_eq!(width(&line[..cut]), 22, "{line}");
        }
    }

    #[test]
    fn truncate_marks_the_cut_and_keeps_short_text() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
