//! The config loader (`Config::from_toml_with`, secrets may be absent) on any text: it
//! answers a config or a list of errors, never a panic.
//!
//! The loader reads the secret files a config names. Its origin is a folder that does not
//! exist, and texts whose `*_file` settings name a path outside it (absolute, `..`, `%d/`)
//! are set aside, so a run reads nothing on this machine (no device or kernel files).
#![no_main]

use libfuzzer_sys::{fuzz_target, Corpus};
use scansync::config::{Config, Secrets};
use std::path::Path;
use toml::de::{DeTable, DeValue};

/// Whether a `*_file` setting (`token_file`, `secret_file`, `metrics_token_file`: the files
/// the loader reads) anywhere in the table names a file outside the origin folder.
fn leaves_origin(table: &DeTable<'_>) -> bool {
    table.iter().any(|(key, value)| match value.get_ref() {
        DeValue::String(s) if key.get_ref().ends_with("_file") => {
            Path::new(s.as_ref()).is_absolute() || s.contains("..") || s.starts_with('%')
        }
        DeValue::String(_) => false,
        DeValue::Table(t) => leaves_origin(t),
        DeValue::Array(items) => items.iter().any(|i| match i.get_ref() {
            DeValue::Table(t) => leaves_origin(t),
            _ => false,
        }),
        _ => false,
    })
}

fuzz_target!(|data: &[u8]| -> Corpus {
    // The loader is handed a file read as UTF-8 text.
    let Ok(text) = std::str::from_utf8(data) else {
        return Corpus::Reject;
    };
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if syntax.is_empty() && leaves_origin(doc.get_ref()) {
        return Corpus::Reject;
    }
    let origin = std::env::temp_dir().join("scansync-fuzz-no-such-folder/scansync.toml");
    match Config::from_toml_with(
        text,
        &origin,
        Secrets::MayBeAbsent,
        scansync::vendors::REGISTRY,
    ) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                assert!(!w.trim().is_empty(), "an empty warning");
            }
        }
        Err(e) => {
            assert!(!e.errors.is_empty(), "refused without an error");
            for m in &e.errors {
                assert!(!m.trim().is_empty(), "an empty error");
            }
        }
    }
    Corpus::Keep
});
