//! The TOML config file: plain structs, built and validated once by [`Config::load`].
//!
//! Everything downstream (scheduler, connectors, CLI) receives an already validated
//! [`Config`] and never re-checks it.
//!
//! One description of the file: the checker ([`check`]) walks the parsed document table by
//! table and key by key and builds the structs as it goes; there is no serde schema beside
//! it to drift from it. (serde stops at the first problem of a table, and a config with
//! three mistakes should be fixed in one round, not three.) Every message names its field
//! path and line.
//!
//! # Layout
//! - this file: the structs, the entry points, the errors;
//! - [`check`]: the walk (core and top level), with `check/scans.rs` (instances, tokens,
//!   scans, schedules, push hooks) and `check/tables.rs` (store, daemon, server, webhooks,
//!   suppression rules);
//! - [`schedule`]: schedules, cron and durations;
//! - [`secrets`]: reading tokens and secrets from environment variables and credentials.

use crate::finding::Severity;
use crate::secret::Secret;
use chrono::{DateTime, FixedOffset, Utc};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

mod check;
mod schedule;
mod secrets;
mod webhook;

use schedule::unknown_schedule_word;
pub use schedule::{format_duration, parse_cron, parse_duration, Schedule};
use secrets::*;
pub use webhook::{EventType, Route};
#[cfg(test)]
mod tests;

/// Where the config is read from when `--config` is not given and `$SCANSYNC_CONFIG` is unset.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/scansync/config.toml";

/// The whole file.
#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreConfig,
    pub daemon: DaemonConfig,
    pub instances: BTreeMap<String, InstanceConfig>,
    pub scans: Vec<ScanConfig>,
    /// Outgoing notifications, by name (`[webhooks.NAME]`).
    pub webhooks: BTreeMap<String, WebhookConfig>,
    /// The optional HTTP listener; `None` (no `[server]` table) means no listener at all.
    pub server: Option<ServerConfig>,
    /// Suppression rules (`[[suppress]]`), in file order: the first that matches a finding
    /// triages it.
    pub suppress: Vec<SuppressRule>,
}

/// `[server]`: the listener for webhook-triggered scans, `/healthz`, `/readyz` and
/// `/metrics`. Read once at start-up: changing it needs a restart (a reload says so).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// An IP address and port, e.g. `127.0.0.1:8787` (port 0 picks a free one).
    pub listen: SocketAddr,
    /// PEM certificate chain and private key; both or neither. With them the listener speaks
    /// only HTTPS. Relative to the config file's folder.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// A reverse proxy terminates TLS in front of the listener: binding outside loopback
    /// without TLS is then expected and not warned about.
    pub behind_proxy: bool,
    /// A file holding the bearer token `GET /metrics` requires; no file, no token needed.
    pub metrics_token_file: Option<PathBuf>,
    /// The token, read once by validation from `metrics_token_file`.
    pub metrics_token: Option<Secret>,
    /// Connections served at once; more are closed as they arrive, so a flood of idle or
    /// slow connections cannot exhaust the daemon's file descriptors or memory.
    pub max_connections: usize,
}

/// `[daemon] fix_guard` when not set: a run may fix at most half of what its scan had (see
/// `store::fix_absent`).
pub const DEFAULT_FIX_GUARD: f64 = 0.5;

/// `[server] max_connections` when not set: far above what webhooks and scrapes need.
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;

/// The platform a scan's webhook comes from; it decides the signature, event and payload
/// format the listener expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Github,
    Gitlab,
    /// Bitbucket Cloud and Bitbucket Data Center (their payloads are told apart by event).
    Bitbucket,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::Github, Platform::Gitlab, Platform::Bitbucket];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Github => "github",
            Platform::Gitlab => "gitlab",
            Platform::Bitbucket => "bitbucket",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scan's `webhook = { … }`: pushes to matching branches start the scan at once.
#[derive(Debug, Clone)]
pub struct ScanHookConfig {
    pub platform: Platform,
    /// Exactly one of `secret_file`, `secret_env` gives the shared secret. After validation
    /// `secret_file` is the path actually read (relative paths joined to the config folder).
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
    /// Branch name globs (`*` within one path segment, `**` across `/`, `?` one character),
    /// as GitHub's branch filters write them: `["main", "release/*"]`.
    pub branches: Vec<String>,
    /// The secret, read once by validation.
    pub secret: Option<Secret>,
}

/// `[store]`
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `path` or `url`: exactly one.
    pub location: StoreLocation,
    /// `[store] retention`: how long what piles up is kept (the daemon prunes it).
    pub retention: Retention,
}

/// Where the store is.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    /// `[store] path`: the SQLite file; created with its parent folder if missing (by the
    /// store, at open). A relative path is joined to the config file's folder by validation.
    Sqlite(PathBuf),
    /// `[store] url`: a PostgreSQL database several daemons can share.
    Postgres(PgTarget),
}

impl std::fmt::Display for StoreLocation {
    /// The file, or the url (it never holds a password: validation refuses one).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres(target) => write!(f, "{}", target.shown()),
        }
    }
}

impl StoreLocation {
    /// `--store` on the command line: a SQLite file, or a `postgres://` url whose password
    /// comes from `$PGPASSWORD` (libpq's variable), never from the url itself.
    pub fn from_cli(arg: &str) -> Result<StoreLocation, String> {
        if !is_postgres_url(arg) {
            return Ok(StoreLocation::Sqlite(PathBuf::from(arg)));
        }
        if url_has_password(arg) {
            return Err(
                "--store: the url holds a password; leave it out and set PGPASSWORD instead".into(),
            );
        }
        pg_driver_config(arg).map_err(|e| format!("--store: {e}"))?;
        Ok(StoreLocation::Postgres(PgTarget {
            url: arg.to_owned(),
            password: std::env::var("PGPASSWORD").ok().map(Secret::new),
            ca_file: None,
            schema: None,
        }))
    }
}

/// Whether `s` is a PostgreSQL url rather than a file name.
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// The part of a url the driver reads as `user:password` (up to the first `@`, as
/// tokio-postgres splits it: a password holding `/` or `?` still ends there), and the rest.
fn url_login(url: &str) -> (Option<&str>, &str) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.split_once('@') {
        Some((login, after)) => (Some(login), after),
        None => (None, rest),
    }
}

/// The url's `key=value` query pairs (after the login: a `?` in a password is not one).
fn url_query(url: &str) -> impl Iterator<Item = (&str, &str)> {
    let (_, rest) = url_login(url);
    rest.split_once('?')
        .map_or("", |(_, q)| q)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Whether a url carries a password: `user:password@` or a `password=` parameter, both of
/// which the driver would log in with.
pub fn url_has_password(url: &str) -> bool {
    url_login(url).0.is_some_and(|login| login.contains(':'))
        || url_query(url).any(|(k, _)| k == "password")
}

/// How the store's connection to PostgreSQL is secured, from the url's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgTls {
    /// `sslmode=disable`: none (a socket on loopback or a trusted link).
    Disable,
    /// `require`, `verify-ca`, `verify-full` or no `sslmode`: TLS that verifies the server's
    /// certificate and name (libpq's `require` verifies nothing; scansync never connects
    /// over TLS it has not verified).
    Verified,
}

/// The url as the driver takes it, with what its `sslmode` asks for. `allow` and `prefer`
/// are refused: they go on in clear text, password and all, when whoever answers declines
/// TLS. `sslrootcert` is refused too: the CA is `[store] ca_file`, checked with the config.
pub fn pg_driver_config(url: &str) -> Result<(PgTls, postgres::Config), String> {
    let mut tls = PgTls::Verified;
    let mut kept = Vec::new();
    for (key, value) in url_query(url) {
        match (key, value) {
            ("sslmode", "disable") => tls = PgTls::Disable,
            ("sslmode", "require" | "verify-ca" | "verify-full") => tls = PgTls::Verified,
            ("sslmode", "allow" | "prefer") => {
                return Err(format!(
                    "sslmode={value} would send the password in clear text to a server (or \
                     anyone in between) that declines TLS; use verify-full (the default), or \
                     disable on a trusted link"
                ))
            }
            ("sslmode", other) => {
                return Err(format!(
                    "sslmode={other} is not one of disable, require, verify-ca, verify-full"
                ))
            }
            ("sslrootcert", _) => {
                return Err("sslrootcert is not read from the url; set [store] ca_file".into())
            }
            _ => kept.push(format!("{key}={value}")),
        }
    }
    let base = url.split_once("://").map_or(url, |(_, r)| r);
    let base = &url[..url.len() - base.len()];
    let (login, rest) = url_login(url);
    let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
    let login = login.map(|l| format!("{l}@")).unwrap_or_default();
    let mode = match tls {
        PgTls::Disable => "disable",
        PgTls::Verified => "require",
    };
    kept.push(format!("sslmode={mode}"));
    let driver = format!("{base}{login}{rest}?{}", kept.join("&"));
    let config = driver
        .parse::<postgres::Config>()
        .map_err(|e| format!("not a PostgreSQL url the driver can use: {e}"))?;
    Ok((tls, config))
}

/// A PostgreSQL store: where it is and how to log in.
#[derive(Clone, PartialEq)]
pub struct PgTarget {
    /// `postgres://user@host:port/db?sslmode=…`, without a password.
    pub url: String,
    /// From `password_file` / `password_env` / `password_credential`.
    pub password: Option<Secret>,
    /// `[store] ca_file`: the CA of the server's certificate (else the system's roots).
    pub ca_file: Option<PathBuf>,
    /// The schema the tables live in (`None`: the login's default search path). Not a config
    /// key: tests give each store one of its own.
    pub schema: Option<String>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgTarget({})", self.shown())
    }
}

impl PgTarget {
    /// The url as errors and logs show it: a password in it (tests only) hidden.
    pub fn shown(&self) -> String {
        hide_password(&self.url)
    }
}

/// A url with its password (`user:secret@`, `password=secret`) replaced by `***`.
pub fn hide_password(url: &str) -> String {
    let (login, rest) = url_login(url);
    let head = &url[..url.len() - rest.len() - login.map_or(0, |l| l.len() + 1)];
    let login = match login {
        Some(l) => match l.split_once(':') {
            Some((user, _)) => format!("{user}:***@"),
            None => format!("{l}@"),
        },
        None => String::new(),
    };
    let (path, query) = rest
        .split_once('?')
        .map_or((rest, None), |(p, q)| (p, Some(q)));
    let query = query.map(|q| {
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some(("password", _)) => "password=***".to_owned(),
                _ => pair.to_owned(),
            })
            .collect();
        format!("?{}", pairs.join("&"))
    });
    format!("{head}{login}{path}{}", query.unwrap_or_default())
}

/// `[store] retention = { runs = "180d", … }`: how long each kind of row that only piles up
/// is kept. Findings of scans in use are never pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Ended runs nothing names any more, and fixed findings last seen that long ago.
    pub runs: Duration,
    /// Finding events (the history `scansync finding` shows).
    pub events: Duration,
    /// Delivered or given-up webhook notifications.
    pub notifications: Duration,
    /// Incoming webhook delivery ids (the replay guard's memory).
    pub webhook_deliveries: Duration,
    /// Branch scopes (`name@branch`) without a run, removed with their findings.
    pub branch_scopes: Duration,
}

impl Default for Retention {
    fn default() -> Retention {
        const DAY: u64 = 24 * 3600;
        Retention {
            runs: Duration::from_secs(180 * DAY),
            events: Duration::from_secs(180 * DAY),
            notifications: Duration::from_secs(30 * DAY),
            webhook_deliveries: Duration::from_secs(DAY),
            branch_scopes: Duration::from_secs(30 * DAY),
        }
    }
}

const RETENTION_KEYS: &[&str] = &[
    "runs",
    "events",
    "notifications",
    "webhook_deliveries",
    "branch_scopes",
];

/// `[daemon]`: limits that keep one vendor from being flooded.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Runs in flight across all scans.
    pub concurrency: usize,
    /// Runs in flight against one instance.
    pub per_instance_concurrency: usize,
    /// How long SIGTERM waits for runs in flight to commit their current page.
    pub shutdown_timeout: Duration,
    /// Random delay added before each periodic run, up to this much.
    pub jitter: Duration,
    /// How often a vendor scan's status is polled.
    pub poll_interval: Duration,
    /// The mass-fix guard: when one complete run would fix more than this share of a scan's
    /// findings (or all of them), the fixes are held one run (`missing`). `1.0` turns it off.
    pub fix_guard: f64,
    /// This daemon's name among those sharing a store (`node` label of `/metrics`, `node`
    /// of `/readyz`); `None`: the host name.
    pub node_name: Option<String>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            concurrency: 4,
            per_instance_concurrency: 2,
            shutdown_timeout: Duration::from_secs(30),
            jitter: Duration::ZERO,
            poll_interval: Duration::from_secs(5),
            fix_guard: DEFAULT_FIX_GUARD,
            node_name: None,
        }
    }
}

/// `[instances.NAME]`: one vendor tenant and how to reach it.
#[derive(Debug, Clone, Default)]
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
    /// After validation `token_file` holds the path actually read: `%d/` expanded to
    /// `$CREDENTIALS_DIRECTORY`, relative paths joined to the config file's folder.
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    /// A systemd credential name, read from `$CREDENTIALS_DIRECTORY/<name>`.
    pub credential: Option<String>,
    /// Inline token: allowed, warned about.
    pub token: Option<String>,
    /// Skip TLS verification. Warned about loudly.
    pub insecure: bool,
    /// Extra PEM roots (self-hosted instances with a private CA). Relative to the config
    /// file's folder; validation checks that it exists.
    pub ca_file: Option<PathBuf>,
    pub proxy: Option<String>,
    /// Per-request timeout.
    pub timeout: Option<Duration>,
    /// The token, read once by validation from whichever source the file names.
    pub resolved_token: Option<Secret>,
}

/// `[[scans]]`: one thing to keep in sync.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    pub name: String,
    pub instance: String,
    /// The vendor project (CodeThreat) or API asset (Salt Security) this scan reads.
    pub bind_to: String,
    pub branch: Option<String>,
    pub environment: Option<String>,
    pub tags: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    /// Findings below this severity are not reported: not notified, not counted for
    /// thresholds. They are stored and tracked all the same, so changing it fixes nothing.
    pub min_severity: Option<Severity>,
    /// Overrides `[daemon] fix_guard` for this scan.
    pub fix_guard: Option<f64>,
    pub enabled: bool,
    pub schedule: Schedule,
    /// A vendor scan still unfinished after this long is marked timed out.
    pub timeout: Duration,
    /// Pushes that start this scan (served by `[server]` at `POST /hooks/<name>`).
    pub webhook: Option<ScanHookConfig>,
}

impl ScanConfig {
    /// The scan `scansync scan -p PROJECT -t TOOL` makes up when the config has none bound to
    /// the project: `<tool>-<project>` on `instance`. The daemon makes the same one to finish
    /// a run of it that `scan --async` or `--timeout` left.
    pub fn ad_hoc(tool: &str, instance: &str, project: &str) -> ScanConfig {
        ScanConfig {
            name: format!("{tool}-{project}"),
            instance: instance.to_string(),
            bind_to: project.to_string(),
            branch: None,
            environment: None,
            tags: Vec::new(),
            metadata: BTreeMap::new(),
            min_severity: None,
            fix_guard: None,
            enabled: true,
            schedule: Schedule::Now,
            timeout: Duration::from_secs(2 * 3600),
            webhook: None,
        }
    }
}

/// `[webhooks.NAME]`: where notifications about runs are sent, signed the Standard Webhooks
/// way (see [`crate::webhooks`]).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// An http(s) URL; notifications are POSTed to it.
    pub url: String,
    /// Exactly one of `secret_file` / `secret_env` gives the signing secret. After
    /// validation `secret_file` holds the path actually read (`%d/` expanded, relative
    /// paths joined to the config file's folder).
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
    /// What to send; default `["findings.new"]`.
    pub events: Vec<EventType>,
    /// Only findings of this severity or worse; default: every severity.
    pub min_severity: Option<Severity>,
    /// Only runs of these scans (names of `[[scans]]`); default: every scan.
    pub scans: Vec<String>,
    /// Per-attempt timeout (connect + answer).
    pub timeout: Duration,
    /// The signing secret, read once by validation.
    pub resolved_secret: Option<Secret>,
}

fn default_webhook_events() -> Vec<EventType> {
    vec![EventType::FindingsNew]
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(10)
}

impl WebhookConfig {
    /// Where the secret comes from, in words safe to print (never the secret itself).
    pub fn secret_source(&self) -> String {
        if let Some(f) = &self.secret_file {
            format!("secret from file {}", f.display())
        } else if let Some(v) = &self.secret_env {
            format!("secret from env {v}")
        } else {
            "no secret".to_string()
        }
    }
}

/// `[[suppress]]`: findings a team never wants to see as open (test folders, a rule accepted
/// for a scan), triaged as they are stored. Matching is pure and lives here so the store, the
/// page import and `check-config` agree on it.
#[derive(Debug, Clone, PartialEq)]
pub struct SuppressRule {
    /// What the findings' triage and events name; default `suppress[N]` (its position, so
    /// naming a rule keeps its history when rules are reordered).
    pub name: String,
    /// `[[scans]]` names; empty: every scan. A scan's branch runs (`name@branch`) count as it.
    pub scans: Vec<String>,
    /// The vendor's rule id, exactly.
    pub rule: Option<String>,
    /// A glob over the file path (code findings) or the API path (API findings), in the
    /// dialect of [`crate::glob::path_matches`].
    pub path: Option<String>,
    /// A piece of the title, matched without regard to case.
    pub title: Option<String>,
    pub state: SuppressState,
    pub reason: String,
    /// The rule stops applying on this day (UTC); the findings it suppressed are released at
    /// their scan's next run.
    pub until: Option<chrono::NaiveDate>,
}

/// The triage a `[[suppress]]` rule gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressState {
    FalsePositive,
    Accepted,
}

impl SuppressState {
    /// The store's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressState::FalsePositive => "false_positive",
            SuppressState::Accepted => "accepted",
        }
    }
}

impl SuppressRule {
    /// Whether the rule covers a store scan (`name`, or `name@branch` for a branch run).
    pub fn covers_scan(&self, store_scan: &str) -> bool {
        self.scans.is_empty()
            || self.scans.iter().any(|s| {
                store_scan == s
                    || store_scan
                        .strip_prefix(s.as_str())
                        .is_some_and(|rest| rest.starts_with('@'))
            })
    }

    /// Whether the rule still applies at `stamp` (an RFC 3339 UTC time as the store writes
    /// it): before the start of its `until` day.
    pub fn active_at(&self, stamp: &str) -> bool {
        self.until_word().is_none_or(|u| u.as_str() > stamp)
    }

    /// `until` as the store keeps it (`YYYY-MM-DD`).
    pub fn until_word(&self) -> Option<String> {
        self.until.map(|d| d.format("%Y-%m-%d").to_string())
    }

    /// Whether the finding matches every matcher the rule gives (it gives at least one).
    pub fn matches(&self, finding: &crate::finding::Finding) -> bool {
        use crate::finding::Location;
        if let Some(rule) = &self.rule {
            if finding.rule_id.as_deref() != Some(rule.as_str()) {
                return false;
            }
        }
        if let Some(pattern) = &self.path {
            let path = match &finding.location {
                Location::Code { path, .. } => path.as_str(),
                Location::Api { path, .. } => path.as_str(),
                Location::Unknown => return false,
            };
            if !crate::glob::path_matches(pattern, path) {
                return false;
            }
        }
        if let Some(piece) = &self.title {
            if !finding.title.to_lowercase().contains(&piece.to_lowercase()) {
                return false;
            }
        }
        true
    }
}

fn default_scan_timeout() -> Duration {
    Duration::from_secs(2 * 3600)
}

/// What the checker needs to know of a vendor. Each vendor file declares one (the list is
/// `vendors::REGISTRY`), and whoever loads a config hands the list in: config names no vendor,
/// and a new vendor touches no file here.
pub trait VendorRules: Sync {
    /// The word of `vendor = "…"`.
    fn name(&self) -> &'static str;
    /// The vendor's own checks of an instance (required and forbidden keys), as
    /// `field: message` strings relative to the instance table, e.g.
    /// `organization: is required for codethreat`.
    fn check(&self, instance: &InstanceConfig) -> Vec<String>;
    /// Whether scansync starts this vendor's scans (CodeThreat) or only reads its findings
    /// as they are (Salt Security): a push hook means nothing for the latter.
    fn starts_scans(&self) -> bool;
}

/// Every problem found in a config file, each naming its field path and line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .errors.join("\n"))]
pub struct ConfigErrors {
    pub errors: Vec<String>,
}

impl ConfigErrors {
    fn one(message: String) -> Self {
        ConfigErrors {
            errors: vec![message],
        }
    }
}

/// How a secret that cannot be read now (an unset variable, a missing file or credential)
/// counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// An error: the commands that use the secrets.
    Required,
    /// A warning: `check-config` run from a shell, whose environment is not the service's.
    MayBeAbsent,
}

/// A validated config and the warnings validation produced (inline token, `insecure`, a
/// token file readable by others): not errors, but worth a line each.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads, parses and validates the file, resolving tokens. Returns every error at once.
    /// Warnings (inline token, `insecure`, a token file readable by others) go to `tracing`.
    pub fn load<V: VendorRules>(path: &Path, vendors: &[V]) -> Result<Config, ConfigErrors> {
        let loaded = Config::load_checking(path, Secrets::Required, vendors)?;
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        Ok(loaded.config)
    }

    /// Like [`Config::load`], but hands the warnings back instead of logging them, with a
    /// choice of how unreadable secrets count (`check-config` without `--strict` passes
    /// [`Secrets::MayBeAbsent`]).
    pub fn load_checking<V: VendorRules>(
        path: &Path,
        secrets: Secrets,
        vendors: &[V],
    ) -> Result<Loaded, ConfigErrors> {
        let text = read(path)?;
        Config::from_toml_with(&text, path, secrets, vendors)
    }

    /// Parses and validates config text. `origin` is the file it came from: it names the file
    /// in syntax errors, and relative paths in the config (`store.path`, `token_file`,
    /// `ca_file`) are taken relative to its folder, so a config works the same whatever the
    /// daemon's working directory is.
    pub fn from_toml<V: VendorRules>(
        text: &str,
        origin: &Path,
        vendors: &[V],
    ) -> Result<Loaded, ConfigErrors> {
        Config::from_toml_with(text, origin, Secrets::Required, vendors)
    }

    /// [`Config::from_toml`] with a choice of how unreadable secrets count.
    pub fn from_toml_with<V: VendorRules>(
        text: &str,
        origin: &Path,
        secrets: Secrets,
        vendors: &[V],
    ) -> Result<Loaded, ConfigErrors> {
        let vendors: Vec<&dyn VendorRules> =
            vendors.iter().map(|v| v as &dyn VendorRules).collect();
        check::check(text, origin, secrets, &vendors)
    }

    /// The `[store]` table alone, checked exactly as [`Config::load`] checks it (path
    /// relative to the file's folder, retention), the rest of the file not read: for the
    /// commands that only read the store (`findings`, `runs`, `export`, `store prune`), which
    /// must work where the vendors' secrets cannot be read.
    pub fn store_only(path: &Path) -> Result<StoreConfig, ConfigErrors> {
        let text = read(path)?;
        check::store_only(&text, path)
    }

    /// Every key the file may hold, as dotted paths with `*` for a name the user picks
    /// (`store.retention.runs`, `instances.*.url`, `suppress.*.reason`): for documentation
    /// that must name them all.
    pub fn known_keys() -> Vec<String> {
        check::known_keys()
    }

    /// The path the CLI should read: `--config`, else `$SCANSYNC_CONFIG`, else the default.
    pub fn resolve_path(cli: Option<&Path>) -> PathBuf {
        cli.map(Path::to_path_buf)
            .or_else(|| std::env::var_os("SCANSYNC_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
    }
}

impl InstanceConfig {
    /// Where the token comes from, in words safe to print (never the token itself).
    pub fn token_source(&self) -> String {
        if let Some(f) = &self.token_file {
            format!("token from file {}", f.display())
        } else if let Some(v) = &self.token_env {
            format!("token from env {v}")
        } else if let Some(c) = &self.credential {
            format!("token from credential {c}")
        } else if self.token.is_some() {
            "token inline".to_string()
        } else {
            "no token".to_string()
        }
    }
}

fn read(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::one(format!(
            "{}: cannot read the config file: {e}; pass --config PATH or set $SCANSYNC_CONFIG",
            path.display()
        ))
    })
}

/// This daemon's name among the nodes that share a store (`[daemon] node_name`, else the
/// host name): every `/metrics` series carries it as its `node` label (the store's figures,
/// which every node serves alike, and each node's own counters can be told apart), and the
/// store's leases name it, so `scan_leases` and "being run by" messages say which host.
static NODE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names this process for [`node`]; the first call wins (set once, at the daemon's start,
/// before anything is recorded).
pub fn set_node(name: Option<&str>) {
    let _ = NODE.set(name.map_or_else(host_name, str::to_owned));
}

/// See [`NODE`].
pub fn node() -> &'static str {
    NODE.get_or_init(host_name)
}

/// The kernel's host name (what `hostname` prints).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
