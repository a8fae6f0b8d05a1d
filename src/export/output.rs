//! `--output PATH`: the file appears complete or not at all.

use super::ExportError;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Runs `write` against a temporary file beside `path`, then syncs it and renames it over
/// `path`.
///
/// Why: an export is often picked up by another program (a CI upload, a cron copy); if the
/// export fails halfway (store error, full disk, Ctrl-C) that program must see the previous
/// file or none, never half a SARIF document. The temporary file lives in the same folder so
/// the rename is atomic, and it is removed on any error. It is created readable by its owner
/// only, which the finished file keeps: an export lists exploitable weaknesses.
pub fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&mut File>) -> Result<T, ExportError>,
) -> Result<T, ExportError> {
    let output_err = |source: std::io::Error| ExportError::Output {
        path: path.display().to_string(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            output_err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the output path names a folder, not a file",
            ))
        })?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-{}-", std::process::id()))
        .tempfile_in(dir)
        .map_err(output_err)?;
    // On any early return `tmp` is dropped, which deletes the temporary file.
    let value = {
        let mut buf = BufWriter::new(tmp.as_file_mut());
        let value = write(&mut buf)?;
        buf.flush()?;
        value
    };
    tmp.as_file().sync_all().map_err(output_err)?;
    tmp.persist(path).map_err(|e| output_err(e.error))?;
    // The rename is durable only once the folder entry is on disk too.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn completed_export_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "old\n").unwrap();
        let n = write_atomically(&path, |w| {
            w.write_all(b"new\n")?;
            Ok(7)
        })
        .unwrap();
        assert_eq!(n, 7);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(entries(dir.path()), vec!["out.jsonl"]);
    }

    #[test]
    fn failed_export_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.sarif");
        std::fs::write(&path, "previous export").unwrap();
        let err = write_atomically(&path, |w| -> Result<(), ExportError> {
            w.write_all(&[b'x'; 100_000])?;
            Err(ExportError::Io(std::io::Error::other("store went away")))
        })
        .unwrap_err();
        assert!(err.to_string().contains("store went away"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "previous export");
        assert_eq!(entries(dir.path()), vec!["out.sarif"]);
    }

    #[test]
    fn failed_first_export_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.csv");
        let err = write_atomically(&path, |_| -> Result<(), ExportError> {
            Err(ExportError::Io(std::io::Error::other("boom")))
        })
        .unwrap_err();
        assert!(
            matches!(&err, ExportError::Io(e) if e.to_string() == "boom"),
            "{err:?}"
        );
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn missing_folder_is_reported_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/out.csv");
        let err = write_atomically(&path, |_| Ok(())).unwrap_err();
        match &err {
            ExportError::Output {
                path: shown,
                source,
            } => {
                assert_eq!(shown, &path.display().to_string());
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("not an output error: {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("no/such/dir/out.csv") && msg.contains("writable"),
            "{msg}"
        );
    }
}
