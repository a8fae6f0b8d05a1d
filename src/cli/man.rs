//! `scansync man --out DIR`: writes the man pages, one per subcommand
//! (`scansync-store-prune.1`) from the clap definitions and `scansync.toml.5` from
//! [`super::config_reference`]. The Debian package build runs it right after building the
//! binary (`scripts/build-deb`), so the pages describe exactly the binary they ship with.
//!
//! A subcommand rather than a build script: a build script cannot use the crate's own clap
//! definitions (they name the crate's types), and a copy of them would drift.

use super::Global;
use anyhow::Context as _;
use clap::CommandFactory;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The folder to write the pages into (created if missing)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Writes every page into `--out` and lists them on stdout. Needs no config file.
pub async fn run(_global: &Global, args: Args) -> anyhow::Result<u8> {
    for page in write_pages(&args.out)? {
        println!("{}", page.display());
    }
    Ok(0)
}

/// Writes the section 1 pages (the command and each visible subcommand, nested ones
/// included) and `scansync.toml.5` into `dir`; returns the files written, sorted.
pub fn write_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create the folder {} for the man pages",
            dir.display()
        )
    })?;
    clap_mangen::generate_to(super::Cli::command(), dir)
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
    let config_page = dir.join("scansync.toml.5");
    std::fs::write(
        &config_page,
        super::config_reference::render_man_page(env!("CARGO_PKG_VERSION")),
    )
    .with_context(|| format!("cannot write {}", config_page.display()))?;
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let is_page = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("scansync") && (n.ends_with(".1") || n.ends_with(".5")));
        if is_page {
            pages.push(path);
        }
    }
    pages.sort();
    Ok(pages)
}
