//! Text for a person's terminal. Titles, locations and error messages come from vendors (and
//! through them from whoever wrote the scanned code), so they may hold control characters:
//! an escape sequence in a finding title could recolour, retitle or clear the operator's
//! terminal. Everything the CLI prints from outside goes through [`clean`]; tables measure
//! and cut it in terminal columns ([`width`], [`fit`]) so wide characters stay aligned.
//!
//! A leaf: imports nothing of the project.

use std::borrow::Cow;
use std::fmt::Write as _;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Whether `c` must not reach a terminal as it is: C0 and C1 controls, DEL, and the
/// bidirectional overrides and isolates that reorder what follows them on screen.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character written as an escape (`\n`, `\t`, `\r`, `\u{1b}`), so it
/// prints on one line and cannot drive the terminal. Text without any is returned as is.
pub fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Columns `s` takes on a terminal (a CJK character or an emoji takes two, a combining
/// mark none). Meant for text already [`clean`]ed.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// `s` cut to at most `max` columns, the cut marked with `…`.
pub fn fit(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > max {
            break;
        }
        out.push(c);
        used += w;
    }
    if max > 0 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_untouched() {
        assert!(matches!(
            clean("SQL Injection – ünïcode 漢字"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            clean("evil\u{1b}]0;pwned\u{7}\u{1b}[2J title"),
            "evil\\u{1b}]0;pwned\\u{7}\\u{1b}[2J title"
        );
        assert_eq!(clean("two\nlines\r\tx"), "two\\nlines\\r\\tx");
        assert_eq!(
            clean("c1 \u{9b}31m del \u{7f}"),
            "c1 \\u{9b}31m del \\u{7f}"
        );
        assert_eq!(clean("a\u{202e}gnp.exe"), "a\\u{202e}gnp.exe");
    }

    #[test]
    fn wide_characters_count_two_columns_and_cuts_respect_them() {
        assert_eq!(width("abc"), 3);
        assert_eq!(width("漢字"), 4);
        assert_eq!(width("e\u{301}"), 1);
        assert_eq!(fit("漢字漢字", 5), "漢字…");
        assert_eq!(width(&fit("漢字漢字", 5)), 5);
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }
}
