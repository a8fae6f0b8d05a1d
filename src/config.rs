//! The TOML config file: plain serde structs, validated once by [`Config::load`].
//!
//! Everything downstream (scheduler, connectors, CLI) receives an already validated
//! [`Config`] and never re-checks it.

use crate::finding::Severity;
use crate::secret::Secret;
use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the config is read from when `--config` is not given and `$SCANSYNC_CONFIG` is unset.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/scansync/config.toml";

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub store: StoreConfig,
    #[serde(default)]
    pub daemon: DaemonConfig,
    #[serde(default)]
    pub instances: BTreeMap<String, InstanceConfig>,
    #[serde(default)]
    pub scans: Vec<ScanConfig>,
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite file; created with its parent folder if missing.
    pub path: PathBuf,
}

/// `[daemon]`: limits that keep one vendor from being flooded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Runs in flight across all scans.
    pub concurrency: usize,
    /// Runs in flight against one instance.
    pub per_instance_concurrency: usize,
    /// How long SIGTERM waits for runs in flight to commit their current page.
    #[serde(with = "duration_str")]
    pub shutdown_timeout: Duration,
    /// Random delay added before each periodic run, up to this much.
    #[serde(with = "duration_str")]
    pub jitter: Duration,
    /// How often a vendor scan's status is polled.
    #[serde(with = "duration_str")]
    pub poll_interval: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            concurrency: 4,
            per_instance_concurrency: 2,
            shutdown_timeout: Duration::from_secs(30),
            jitter: Duration::ZERO,
            poll_interval: Duration::from_secs(5),
        }
    }
}

/// `[instances.NAME]`: one vendor tenant and how to reach it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    /// A name from the vendor registry (`codethreat`, `saltsecurity`).
    pub vendor: String,
    /// Base URL (CodeThreat: required; Salt Security: instead of `region`). May carry a path
    /// prefix, as self-hosted instances behind a reverse proxy do.
    pub url: Option<String>,
    /// Salt Security only: `us` or `eu`.
    pub region: Option<String>,
    /// CodeThreat only, required: sent as `x-ct-organization`.
    pub organization: Option<String>,
    /// Exactly one of `token_file`, `token_env`, `credential`, `token` gives the token.
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    /// A systemd credential name, read from `$CREDENTIALS_DIRECTORY/<name>`.
    pub credential: Option<String>,
    /// Inline token: allowed, warned about.
    pub token: Option<String>,
    /// Skip TLS verification. Warned about loudly.
    #[serde(default)]
    pub insecure: bool,
    /// Extra PEM roots (self-hosted instances with a private CA).
    pub ca_file: Option<PathBuf>,
    pub proxy: Option<String>,
    /// Per-request timeout.
    #[serde(default, with = "opt_duration_str")]
    pub timeout: Option<Duration>,
    /// The token, read once by validation from whichever source the file names.
    #[serde(skip)]
    pub resolved_token: Option<Secret>,
}

/// `[[scans]]`: one thing to keep in sync.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanConfig {
    pub name: String,
    pub instance: String,
    /// The vendor project (CodeThreat) or API asset (Salt Security) this scan reads.
    pub bind_to: String,
    pub branch: Option<String>,
    pub environment: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Findings below this severity are not stored.
    pub min_severity: Option<Severity>,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub schedule: Schedule,
    /// A vendor scan still unfinished after this long is marked timed out.
    #[serde(default = "default_scan_timeout", with = "duration_str")]
    pub timeout: Duration,
}

fn yes() -> bool {
    true
}

fn default_scan_timeout() -> Duration {
    Duration::from_secs(2 * 3600)
}

/// When a scan runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Once at start-up (and not again after a restart if that run completed).
    Now,
    /// Once at this instant.
    At(DateTime<FixedOffset>),
    /// Periodic, cron dialect of `croner` (5 or 6 fields, seconds optional), in `timezone`.
    Cron {
        expr: String,
        timezone: chrono_tz::Tz,
    },
    /// Periodic, every so long.
    Every(Duration),
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(_d: D) -> Result<Self, D::Error> {
        todo!("config helper: parse \"now\" | {{at}} | {{cron, timezone}} | {{every}}")
    }
}

/// Every problem found in a config file, each naming its field path and line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .errors.join("\n"))]
pub struct ConfigErrors {
    pub errors: Vec<String>,
}

impl Config {
    /// Reads, parses and validates the file, resolving tokens. Returns every error at once.
    /// Warnings (inline token, `insecure`, a token file readable by others) go to `tracing`.
    pub fn load(_path: &Path) -> Result<Config, ConfigErrors> {
        todo!("config helper")
    }

    /// The path the CLI should read: `--config`, else `$SCANSYNC_CONFIG`, else the default.
    pub fn resolve_path(cli: Option<&Path>) -> PathBuf {
        cli.map(Path::to_path_buf)
            .or_else(|| std::env::var_os("SCANSYNC_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
    }
}

/// `"30s"`, `"15m"`, `"6h"`, `"1d"`, `"1h30m"` ↔ `Duration`.
pub fn parse_duration(_s: &str) -> Result<Duration, String> {
    todo!("config helper")
}

mod duration_str {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

mod opt_duration_str {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}
