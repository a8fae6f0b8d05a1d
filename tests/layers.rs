//! The modules of src/ form a stack: each may use only the modules below it, so nothing
//! imports its way back up and no two modules lean on each other. This test reads every
//! `crate::` path in the library's non-test code and fails on an import that points up (or
//! on a top-level module missing from the stack), naming the file and line.
//!
//! The stack, bottom first (README.md, "How the code is laid out", says what each layer is
//! for):
//! words and leaves others call → config as plain data → the store (SQL only) → metrics →
//! vendors over one HTTP layer → outputs (exports, webhook payloads and delivery) → sync →
//! the daemon and its listener → the command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bottom first. A module may use any module listed before it, none after it.
const STACK: &[&str] = &[
    // Words and leaves: no module of the crate below them.
    "display", "glob", "secret", "sign", "tls", "logging", "finding", "sim",
    // Config as plain data; vendors' rules for their keys are handed to its checker.
    "config",
    // The store: SQL only; it emits typed rows and events and knows no payload format.
    "store",
    // Counters others record into; the store-backed families read a store::Reader.
    "metrics", // Vendors over one HTTP layer.
    "http", "vendors", // Outputs built from store rows.
    "export", "webhooks", // Runs: when (schedule) and how (sync).
    "schedule", "sync", // The long-running process and its listener.
    "server", "daemon", // The command line, a shell over all of it.
    "cli",
];

#[test]
fn modules_only_import_modules_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rank: BTreeMap<&str, usize> = STACK.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut problems = Vec::new();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 20,
        "found only {} files under src/",
        files.len()
    );
    let tests = test_module_files(&files);

    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = top_module(rel);
        if top == "lib" || top == "main" || tests.contains(file) {
            continue;
        }
        let Some(&own) = rank.get(top.as_str()) else {
            problems.push(format!(
                "src/{}: module `{top}` is not in the STACK of tests/layers.rs; add it where it belongs",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line_no, target) in crate_imports(&non_test_code(&text)) {
            if target == top {
                continue;
            }
            match rank.get(target.as_str()) {
                Some(&their) if their < own => {}
                Some(_) => problems.push(format!(
                    "src/{}:{line_no}: `{top}` uses `crate::{target}`, which is above it in the stack",
                    rel.display()
                )),
                None => {} // a macro or a name that is not a module of the crate
            }
        }
    }
    assert!(
        problems.is_empty(),
        "imports that point up the stack:\n{}",
        problems.join("\n")
    );
}

/// The checker itself: an upward import, a grouped one, one in a comment and one in a test
/// module.
#[test]
fn the_checker_sees_plain_grouped_and_qualified_paths_but_not_comments_or_tests() {
    let text = "use crate::store::Store;\n\
                use crate::{config::Config, webhooks};\n\
                // crate::cli in a comment\n\
                /// crate::daemon in a doc comment\n\
                let x = crate::sync::run(); // and crate::server after code\n\
                let s = \"crate::cli in a string\";\n\
                #[cfg(test)]\n\
                mod tests {\n    use crate::cli;\n}\n";
    let found: Vec<String> = crate_imports(&non_test_code(text))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(found, ["store", "config", "webhooks", "sync"]);
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn top_module(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Files declared as `#[cfg(test)] mod NAME;` in their parent: test code, outside the stack.
fn test_module_files(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for pair in lines.windows(2) {
            if pair[0] == "#[cfg(test)]" {
                if let Some(name) = pair[1]
                    .strip_prefix("mod ")
                    .and_then(|r| r.strip_suffix(';'))
                {
                    let dir = file.parent().unwrap();
                    out.push(dir.join(format!("{name}.rs")));
                }
            }
        }
    }
    out
}

/// The text without comments, string literals and `#[cfg(test)]` blocks, lines kept in place
/// (a removed line becomes empty) so line numbers stay true.
fn non_test_code(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i64> = None;
    let mut pending_test = false;
    for line in text.lines() {
        let code = strip_comment_and_strings(line);
        if let Some(depth) = skip_depth.as_mut() {
            *depth += brace_balance(&code);
            if *depth <= 0 {
                skip_depth = None;
            }
            out.push('\n');
            continue;
        }
        let trimmed = code.trim();
        if trimmed == "#[cfg(test)]" {
            pending_test = true;
            out.push('\n');
            continue;
        }
        if pending_test {
            pending_test = false;
            let balance = brace_balance(&code);
            if balance > 0 {
                skip_depth = Some(balance);
            }
            out.push('\n');
            continue;
        }
        out.push_str(&code);
        out.push('\n');
    }
    out
}

fn brace_balance(code: &str) -> i64 {
    code.chars()
        .map(|c| match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        })
        .sum()
}

/// One line without its `//` comment and with string literals emptied.
fn strip_comment_and_strings(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    in_string = false;
                    out.push('"');
                }
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push('"');
            }
            '/' if chars.peek() == Some(&'/') => break,
            _ => out.push(c),
        }
    }
    out
}

/// Every `crate::NAME` (and each name of a `crate::{…}` group) with its line number.
fn crate_imports(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            // `super::crate` cannot happen; `$crate::` is a macro's own path.
            let before = &rest[..at];
            let is_path = !before.ends_with('$')
                && !before.ends_with(|c: char| c.is_alphanumeric() || c == '_');
            if is_path {
                if let Some(group) = after.strip_prefix('{') {
                    let group = group_text(group, code, i);
                    for name in group_top_names(&group) {
                        found.push((i + 1, name));
                    }
                } else {
                    let name: String = after
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.push((i + 1, name));
                    }
                }
            }
            rest = after;
        }
    }
    found
}

/// The text of a `{…}` group that may span lines, from just after its `{`.
fn group_text(start: &str, code: &str, line: usize) -> String {
    let mut text = String::from(start);
    for next in code.lines().skip(line + 1) {
        if brace_balance(&text) < 0 {
            break;
        }
        text.push(' ');
        text.push_str(next);
    }
    let mut depth = 0;
    let mut end = text.len();
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                end = i;
                break;
            }
            '}' => depth -= 1,
            _ => {}
        }
    }
    text[..end].to_string()
}

/// The first name of each comma-separated item at the group's top level.
fn group_top_names(group: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0;
    let mut item_start = true;
    let mut current = String::new();
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                item_start = true;
                continue;
            }
            _ => {}
        }
        if depth == 0 && item_start {
            if c.is_alphanumeric() || c == '_' {
                current.push(c);
            } else if !current.is_empty() {
                names.push(std::mem::take(&mut current));
                item_start = false;
            }
        }
    }
    if !current.is_empty() {
        names.push(current);
    }
    names
}
