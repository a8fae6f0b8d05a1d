//! What the Debian package ships from the repository: the commented
//! `/etc/scansync/config.toml` (debian/config.toml) is a valid config once its lines are
//! uncommented, and every asset cargo-deb takes from the repository exists. The package
//! itself is built, installed and removed by `.ci/run` (scripts/build-deb, scripts/check-deb).

use scansync::config::{Config, Secrets};
use std::path::Path;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn the_packaged_config_is_refused_as_shipped_and_valid_once_uncommented() {
    let text = std::fs::read_to_string(repo("debian/config.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("config.toml");
    // As shipped: every line a comment, so the service cannot start on it by mistake.
    let errors = match Config::from_toml_with(
        &text,
        &origin,
        Secrets::MayBeAbsent,
        scansync::vendors::REGISTRY,
    ) {
        Ok(_) => panic!("the shipped, fully commented config was accepted"),
        Err(e) => e.errors,
    };
    assert!(
        errors.iter().any(|e| e.contains("store")),
        "the refusal does not name [store]: {errors:?}"
    );
    // The skeleton: the commented lines after the header ("# [store]" onwards).
    let start = text
        .find("# [store]")
        .expect("the skeleton starts with # [store]");
    let uncommented: String = text[start..]
        .lines()
        .map(|l| {
            l.strip_prefix("# ")
                .unwrap_or(l.strip_prefix('#').unwrap_or(l))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let loaded = Config::from_toml_with(
        &uncommented,
        &origin,
        Secrets::MayBeAbsent,
        scansync::vendors::REGISTRY,
    )
    .unwrap_or_else(|e| panic!("the uncommented skeleton is invalid: {:#?}", e.errors));
    assert_eq!(loaded.config.scans.len(), 1);
}

#[test]
fn every_repository_asset_of_the_package_exists() {
    let manifest: toml::Table = std::fs::read_to_string(repo("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"]
        .as_array()
        .expect("[package.metadata.deb] assets");
    let mut checked = 0;
    for asset in assets {
        let source = asset[0].as_str().unwrap();
        // target/release/ is built (the binary, and what scripts/build-deb writes there).
        if source.starts_with("target/release/") {
            continue;
        }
        assert!(
            repo(source).is_file(),
            "the package asset {source} is missing"
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} repository assets");
    for dir in ["maintainer-scripts", "license-file", "changelog"] {
        let path = match &deb[dir] {
            toml::Value::String(s) => s.clone(),
            toml::Value::Array(a) => a[0].as_str().unwrap().to_string(),
            other => panic!("{dir}: {other:?}"),
        };
        assert!(repo(&path).exists(), "{dir} = {path} does not exist");
    }
    assert!(repo("systemd/scansync.service").is_file());
}

#[test]
fn the_debian_changelog_starts_with_this_version() {
    let changelog = std::fs::read_to_string(repo("debian/changelog")).unwrap();
    let first = changelog.lines().next().unwrap_or_default();
    let expected = format!("scansync ({}-1) ", env!("CARGO_PKG_VERSION"));
    assert!(
        first.starts_with(&expected),
        "debian/changelog starts with {first:?}, not {expected:?}: add an entry for this version \
         (the package ships it as changelog.Debian.gz)"
    );
}
