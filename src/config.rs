//! The TOML config file: plain serde structs, validated once by [`Config::load`].
//!
//! Everything downstream (scheduler, connectors, CLI) receives an already validated
//! [`Config`] and never re-checks it.
//!
//! The serde derives describe the shape, but [`Config::from_toml`] does not go through them:
//! serde stops at the first problem of a table, and a config with three mistakes should be
//! fixed in one round, not three. The loader walks the parsed document key by key instead,
//! so every message names its field path and line.

use crate::finding::Severity;
use crate::secret::Secret;
use chrono::{DateTime, FixedOffset, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

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
    /// Outgoing notifications, by name (`[webhooks.NAME]`).
    #[serde(default)]
    pub webhooks: BTreeMap<String, WebhookConfig>,
    /// The optional HTTP listener; `None` (no `[server]` table) means no listener at all.
    #[serde(default)]
    pub server: Option<ServerConfig>,
    /// Suppression rules (`[[suppress]]`), in file order: the first that matches a finding
    /// triages it.
    #[serde(default)]
    pub suppress: Vec<SuppressRule>,
}

/// `[server]`: the listener for webhook-triggered scans, `/healthz`, `/readyz` and
/// `/metrics`. Read once at start-up: changing it needs a restart (a reload says so).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// An IP address and port, e.g. `127.0.0.1:8787` (port 0 picks a free one).
    pub listen: SocketAddr,
    /// PEM certificate chain and private key; both or neither. With them the listener speaks
    /// only HTTPS. Relative to the config file's folder.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// A reverse proxy terminates TLS in front of the listener: binding outside loopback
    /// without TLS is then expected and not warned about.
    #[serde(default)]
    pub behind_proxy: bool,
    /// A file holding the bearer token `GET /metrics` requires; no file, no token needed.
    pub metrics_token_file: Option<PathBuf>,
    /// The token, read once by validation from `metrics_token_file`.
    #[serde(skip)]
    pub metrics_token: Option<Secret>,
    /// Connections served at once; more are closed as they arrive, so a flood of idle or
    /// slow connections cannot exhaust the daemon's file descriptors or memory.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

/// `[server] max_connections` when not set: far above what webhooks and scrapes need.
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

/// The platform a scan's webhook comes from; it decides the signature, event and payload
/// format the listener expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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
    #[serde(skip)]
    pub secret: Option<Secret>,
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite file; created with its parent folder if missing (by the store, at open).
    /// A relative path in the file is joined to the config file's folder by validation.
    pub path: PathBuf,
    /// `[store] retention`: how long what piles up is kept (the daemon prunes it).
    #[serde(default)]
    pub retention: Retention,
}

/// `[store] retention = { runs = "180d", … }`: how long each kind of row that only piles up
/// is kept. Findings of scans in use are never pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Ended runs nothing names any more, and fixed findings last seen that long ago.
    #[serde(with = "duration_str")]
    pub runs: Duration,
    /// Finding events (the history `scansync finding` shows).
    #[serde(with = "duration_str")]
    pub events: Duration,
    /// Delivered or given-up webhook notifications.
    #[serde(with = "duration_str")]
    pub notifications: Duration,
    /// Incoming webhook delivery ids (the replay guard's memory).
    #[serde(with = "duration_str")]
    pub webhook_deliveries: Duration,
    /// Branch scopes (`name@branch`) without a run, removed with their findings.
    #[serde(with = "duration_str")]
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
    /// The mass-fix guard: when one complete run would fix more than this share of a scan's
    /// findings (or all of them), the fixes are held one run (`missing`). `1.0` turns it off.
    pub fix_guard: f64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            concurrency: 4,
            per_instance_concurrency: 2,
            shutdown_timeout: Duration::from_secs(30),
            jitter: Duration::ZERO,
            poll_interval: Duration::from_secs(5),
            fix_guard: crate::store::DEFAULT_FIX_GUARD,
        }
    }
}

/// `[instances.NAME]`: one vendor tenant and how to reach it.
#[derive(Debug, Clone, Default, Deserialize)]
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
    /// After validation `token_file` holds the path actually read: `%d/` expanded to
    /// `$CREDENTIALS_DIRECTORY`, relative paths joined to the config file's folder.
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    /// A systemd credential name, read from `$CREDENTIALS_DIRECTORY/<name>`.
    pub credential: Option<String>,
    /// Inline token: allowed, warned about.
    pub token: Option<String>,
    /// Skip TLS verification. Warned about loudly.
    #[serde(default)]
    pub insecure: bool,
    /// Extra PEM roots (self-hosted instances with a private CA). Relative to the config
    /// file's folder; validation checks that it exists.
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
    /// Findings below this severity are not reported: not notified, not counted for
    /// thresholds. They are stored and tracked all the same, so changing it fixes nothing.
    pub min_severity: Option<Severity>,
    /// Overrides `[daemon] fix_guard` for this scan.
    #[serde(default)]
    pub fix_guard: Option<f64>,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub schedule: Schedule,
    /// A vendor scan still unfinished after this long is marked timed out.
    #[serde(default = "default_scan_timeout", with = "duration_str")]
    pub timeout: Duration,
    /// Pushes that start this scan (served by `[server]` at `POST /hooks/<name>`).
    #[serde(default)]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// An http(s) URL; notifications are POSTed to it.
    pub url: String,
    /// Exactly one of `secret_file` / `secret_env` gives the signing secret. After
    /// validation `secret_file` holds the path actually read (`%d/` expanded, relative
    /// paths joined to the config file's folder).
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
    /// What to send; default `["findings.new"]`.
    #[serde(default = "default_webhook_events")]
    pub events: Vec<crate::webhooks::EventType>,
    /// Only findings of this severity or worse; default: every severity.
    pub min_severity: Option<Severity>,
    /// Only runs of these scans (names of `[[scans]]`); default: every scan.
    #[serde(default)]
    pub scans: Vec<String>,
    /// Per-attempt timeout (connect + answer).
    #[serde(default = "default_webhook_timeout", with = "duration_str")]
    pub timeout: Duration,
    /// The signing secret, read once by validation.
    #[serde(skip)]
    pub resolved_secret: Option<Secret>,
}

fn default_webhook_events() -> Vec<crate::webhooks::EventType> {
    vec![crate::webhooks::EventType::FindingsNew]
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

fn yes() -> bool {
    true
}

/// `[[suppress]]`: findings a team never wants to see as open (test folders, a rule accepted
/// for a scan), triaged as they are stored. Matching is pure and lives here so the store, the
/// page import and `check-config` agree on it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressRule {
    /// What the findings' triage and events name; default `suppress[N]` (its position, so
    /// naming a rule keeps its history when rules are reordered).
    #[serde(default)]
    pub name: String,
    /// `[[scans]]` names; empty: every scan. A scan's branch runs (`name@branch`) count as it.
    #[serde(default)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// When a scan runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Once at start-up (and not again after a restart if that run completed).
    Now,
    /// Once at this instant.
    At(DateTime<FixedOffset>),
    /// Periodic, in `timezone`, in the cron dialect of [`parse_cron`] (the one
    /// tokio-cron-scheduler uses: 6 fields with seconds first, optional 7th year field).
    Cron {
        expr: String,
        timezone: chrono_tz::Tz,
    },
    /// Periodic, every so long.
    Every(Duration),
}

impl Schedule {
    /// The first time this schedule fires after `now`; `None` when it never fires again (an
    /// `at` instant already past, or a cron expression with no future match). The daemon
    /// plans with it and `check-config` prints it, so both agree on what "next" means.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Now => Some(now),
            Schedule::At(at) => {
                let at = at.with_timezone(&Utc);
                (at > now).then_some(at)
            }
            Schedule::Cron { expr, timezone } => {
                // Matching happens on the wall clock of `timezone`, so a daily 09:00 stays at
                // 09:00 local time across DST changes.
                let cron = parse_cron(expr).ok()?;
                cron.find_next_occurrence(&now.with_timezone(timezone), false)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }
            Schedule::Every(every) => chrono::Duration::from_std(*every)
                .ok()
                .and_then(|d| now.checked_add_signed(d)),
        }
    }

    /// Builds a schedule from the keys of a schedule table. Errors are `(key, message)`, with
    /// an empty key for problems of the table as a whole. Shared by the config loader and the
    /// serde impl so both accept exactly the same thing.
    fn from_parts(
        at: Option<&str>,
        cron: Option<&str>,
        timezone: Option<&str>,
        every: Option<&str>,
    ) -> Result<Schedule, Vec<(&'static str, String)>> {
        let given = [at.is_some(), cron.is_some(), every.is_some()]
            .iter()
            .filter(|g| **g)
            .count();
        let mut errors = Vec::new();
        if given != 1 {
            errors.push((
                "",
                "give exactly one of at, cron or every (e.g. { every = \"6h\" })".to_string(),
            ));
        }
        if timezone.is_some() && cron.is_none() {
            errors.push((
                "timezone",
                "only applies to cron schedules (at carries its own offset)".to_string(),
            ));
        }
        let tz = match timezone {
            None => Some(chrono_tz::UTC),
            Some(name) => match name.parse::<chrono_tz::Tz>() {
                Ok(tz) => Some(tz),
                Err(_) => {
                    errors.push((
                        "timezone",
                        format!(
                            "\"{name}\" is not an IANA time zone name (e.g. \"Europe/Istanbul\", \"America/New_York\", \"UTC\")"
                        ),
                    ));
                    None
                }
            },
        };
        let mut schedule = None;
        if let Some(at) = at {
            match DateTime::parse_from_rfc3339(at) {
                Ok(t) => schedule = Some(Schedule::At(t)),
                Err(_) => errors.push(("at", format!("\"{at}\" is not an RFC 3339 date-time"))),
            }
        }
        if let Some(expr) = cron {
            match parse_cron(expr) {
                Ok(_) => {
                    if let Some(tz) = tz {
                        schedule = Some(Schedule::Cron {
                            expr: expr.trim().to_string(),
                            timezone: tz,
                        });
                    }
                }
                Err(e) => errors.push(("cron", e)),
            }
        }
        if let Some(every) = every {
            match parse_duration(every) {
                Ok(d) if d.is_zero() => {
                    errors.push(("every", format!("\"{every}\" must be more than zero")))
                }
                Ok(d) => schedule = Some(Schedule::Every(d)),
                Err(e) => errors.push(("every", e)),
            }
        }
        match schedule {
            Some(s) if errors.is_empty() => Ok(s),
            _ => Err(errors),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Now => f.write_str("now"),
            Schedule::At(at) => write!(f, "at {}", at.to_rfc3339()),
            Schedule::Cron { expr, timezone } => write!(f, "cron \"{expr}\" {timezone}"),
            Schedule::Every(d) => write!(f, "every {}", format_duration(*d)),
        }
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            at: Option<String>,
            cron: Option<String>,
            timezone: Option<String>,
            every: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Table(Table),
        }
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "now" => Ok(Schedule::Now),
            Raw::Word(w) => Err(serde::de::Error::custom(unknown_schedule_word(&w))),
            Raw::Table(t) => Schedule::from_parts(
                t.at.as_deref(),
                t.cron.as_deref(),
                t.timezone.as_deref(),
                t.every.as_deref(),
            )
            .map_err(|errors| {
                let joined = errors
                    .into_iter()
                    .map(|(k, m)| if k.is_empty() { m } else { format!("{k}: {m}") })
                    .collect::<Vec<_>>()
                    .join("; ");
                serde::de::Error::custom(joined)
            }),
        }
    }
}

fn unknown_schedule_word(word: &str) -> String {
    format!(
        "\"{word}\" is not a schedule; use \"now\", {{ at = \"2026-12-01T02:00:00+03:00\" }}, {{ cron = \"0 0 2 * * *\", timezone = \"Europe/Istanbul\" }} or {{ every = \"6h\" }}"
    )
}

/// Parses a cron expression exactly as tokio-cron-scheduler 0.15 does for its jobs
/// (`Job::new_async_tz`): croner with seconds required (6 fields, optional 7th year field)
/// and day-of-month AND day-of-week both having to match. The daemon must parse with this
/// same function so that what `check-config` accepts is what the scheduler runs.
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| {
            format!(
                "\"{expr}\" is not a valid cron expression ({e}); scansync cron has 6 fields, seconds first: \"sec min hour day-of-month month day-of-week\", e.g. \"0 0 2 * * *\" for 02:00 daily"
            )
        })
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
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let loaded = Config::load_with_warnings(path)?;
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        Ok(loaded.config)
    }

    /// Like [`Config::load`], but hands the warnings back instead of logging them, for
    /// `check-config`, which prints them itself.
    pub fn load_with_warnings(path: &Path) -> Result<Loaded, ConfigErrors> {
        Config::load_checking(path, Secrets::Required)
    }

    /// [`Config::load_with_warnings`] with a choice of how unreadable secrets count
    /// (`check-config` without `--strict` passes [`Secrets::MayBeAbsent`]).
    pub fn load_checking(path: &Path, secrets: Secrets) -> Result<Loaded, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::one(format!(
                "{}: cannot read the config file: {e}; pass --config PATH or set $SCANSYNC_CONFIG",
                path.display()
            ))
        })?;
        Config::from_toml_with(&text, path, secrets)
    }

    /// Parses and validates config text. `origin` is the file it came from: it names the file
    /// in syntax errors, and relative paths in the config (`store.path`, `token_file`,
    /// `ca_file`) are taken relative to its folder, so a config works the same whatever the
    /// daemon's working directory is.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Loaded, ConfigErrors> {
        Config::from_toml_with(text, origin, Secrets::Required)
    }

    /// [`Config::from_toml`] with a choice of how unreadable secrets count.
    pub fn from_toml_with(
        text: &str,
        origin: &Path,
        secrets: Secrets,
    ) -> Result<Loaded, ConfigErrors> {
        let (doc, syntax) = DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            let errors = syntax
                .iter()
                .map(|e| {
                    let line = e
                        .span()
                        .map(|s| format!(" (line {})", line_of(text, &s)))
                        .unwrap_or_default();
                    format!(
                        "{}: not valid TOML: {}{line}",
                        origin.display(),
                        e.message().trim_end()
                    )
                })
                .collect();
            return Err(ConfigErrors { errors });
        }
        let base_dir = origin.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut checker = Checker {
            text,
            base_dir,
            errors: Vec::new(),
            warnings: Vec::new(),
            secrets,
        };
        let config = checker.config(&doc);
        if checker.errors.is_empty() {
            Ok(Loaded {
                config,
                warnings: checker.warnings,
            })
        } else {
            // Line order reads like the file; errors without a line (missing sections) last.
            checker
                .errors
                .sort_by_key(|(line, _)| line.unwrap_or(usize::MAX));
            Err(ConfigErrors {
                errors: checker.errors.into_iter().map(|(_, m)| m).collect(),
            })
        }
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

/// `"30s"`, `"15m"`, `"6h"`, `"1d"`, `"1h30m"` ↔ `Duration`. Units go from the largest to
/// the smallest, each at most once (`30s30s` or `1m1h` are refused: they read as typos, not
/// as sums), and numbers are whole (`1.5h` is refused with a hint to write `1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let usage =
        "use whole numbers with a unit s, m, h or d, e.g. \"30s\", \"15m\", \"6h\", \"1h30m\"";
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("empty duration; {usage}"));
    }
    if t.starts_with('-') {
        return Err(format!("\"{s}\" is negative; {usage}"));
    }
    let mut total: u64 = 0;
    let mut rest = t;
    // The size of the unit before, so each next unit must be smaller.
    let mut previous: Option<(u64, &str)> = None;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(format!("\"{s}\" is not a duration; {usage}"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("\"{s}\" is too long a duration"))?;
        rest = &rest[digits..];
        if let Some(after_point) = rest.strip_prefix(['.', ',']) {
            if after_point.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!(
                    "\"{s}\": fractions are not accepted; write the parts in smaller units, \
                     e.g. \"1h30m\" for 1.5h or \"1m30s\" for 1.5m"
                ));
            }
        }
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let word = &rest[..unit_len];
        let unit = match word {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "" => return Err(format!("\"{s}\" lacks a unit; {usage}")),
            other => return Err(format!("\"{s}\" has unknown unit \"{other}\"; {usage}")),
        };
        if let Some((before, before_word)) = previous {
            if unit == before {
                return Err(format!(
                    "\"{s}\" gives \"{word}\" twice; give each unit once, e.g. \"1h30m\""
                ));
            }
            if unit > before {
                return Err(format!(
                    "\"{s}\" has \"{word}\" after the smaller unit \"{before_word}\"; \
                     write the units from largest to smallest, e.g. \"1h30m\""
                ));
            }
        }
        previous = Some((unit, word));
        rest = &rest[unit_len..];
        total = number
            .checked_mul(unit)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| format!("\"{s}\" is too long a duration"))?;
    }
    Ok(Duration::from_secs(total))
}

/// Why a `webhook.branches` glob would not do what it looks like, if it would not. Our
/// dialect (`crate::glob`: `*`, `**`, `?`, the rest literal) is GitHub's minus two of its
/// words: a `[...]` class and a leading `!` (negation) would be literal characters here, and
/// git refuses `[` in branch names, so such a pattern never matches.
fn branch_glob_problem(pattern: &str) -> Option<String> {
    if pattern.starts_with('!') {
        return Some(format!(
            "\"{pattern}\" starts with \"!\": negated patterns are not supported (it would \
             match only a branch literally named so); list the branches to include instead"
        ));
    }
    if pattern.contains('[') || pattern.contains(']') {
        return Some(format!(
            "\"{pattern}\" has a [...] character class, which is not supported (it would be \
             matched literally, and git does not allow \"[\" in branch names); use \"?\" or \"*\", \
             or list the branches"
        ));
    }
    None
}

/// The inverse of [`parse_duration`], for summaries: `5400s` → `"1h30m"`.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
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

// ---------------------------------------------------------------------------------------
// Validation: walks the parsed document table by table and key by key, so that one bad
// value never hides another, and every message carries its field path and line.

type Val<'i> = Spanned<DeValue<'i>>;

const TOP_KEYS: &[&str] = &[
    "store",
    "daemon",
    "instances",
    "scans",
    "webhooks",
    "server",
    "suppress",
];
const SUPPRESS_KEYS: &[&str] = &[
    "name", "scans", "rule", "path", "title", "state", "reason", "until",
];
const SERVER_KEYS: &[&str] = &[
    "listen",
    "tls_cert_file",
    "tls_key_file",
    "behind_proxy",
    "metrics_token_file",
    "max_connections",
];
const SCAN_HOOK_KEYS: &[&str] = &["platform", "secret_file", "secret_env", "branches"];
/// Shorter webhook secrets are accepted but warned about (`scansync webhook-secret` makes 43
/// characters).
const MIN_WEBHOOK_SECRET_LEN: usize = 16;
const STORE_KEYS: &[&str] = &["path", "retention"];
const DAEMON_KEYS: &[&str] = &[
    "concurrency",
    "per_instance_concurrency",
    "shutdown_timeout",
    "jitter",
    "poll_interval",
    "fix_guard",
];
const INSTANCE_KEYS: &[&str] = &[
    "vendor",
    "url",
    "region",
    "organization",
    "token_file",
    "token_env",
    "credential",
    "token",
    "insecure",
    "ca_file",
    "proxy",
    "timeout",
];
const TOKEN_KEYS: &[&str] = &["token_file", "token_env", "credential", "token"];
const SCAN_KEYS: &[&str] = &[
    "name",
    "instance",
    "bind_to",
    "branch",
    "environment",
    "tags",
    "metadata",
    "min_severity",
    "fix_guard",
    "enabled",
    "schedule",
    "timeout",
    "webhook",
];
const SCHEDULE_KEYS: &[&str] = &["at", "cron", "timezone", "every"];
const WEBHOOK_KEYS: &[&str] = &[
    "url",
    "secret_file",
    "secret_env",
    "events",
    "min_severity",
    "scans",
    "timeout",
];
const SECRET_KEYS: &[&str] = &["secret_file", "secret_env"];

/// 1-based line of a byte offset.
fn line_of(text: &str, span: &Range<usize>) -> usize {
    let end = span.start.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// One table of the document, with the path that names it in messages.
#[derive(Clone, Copy)]
struct Tbl<'a, 'i> {
    path: &'a str,
    table: &'a DeTable<'i>,
    span: &'a Range<usize>,
}

impl<'a, 'i> Tbl<'a, 'i> {
    fn get(&self, key: &str) -> Option<&'a Val<'i>> {
        self.table.get(key)
    }

    fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    /// The span to blame for `key`: its value when present, else the table itself.
    fn span_of(&self, key: &str) -> Range<usize> {
        self.table
            .get_key_value(key)
            .map(|(k, _)| k.span())
            .unwrap_or_else(|| self.span.clone())
    }
}

struct Checker<'t> {
    text: &'t str,
    base_dir: PathBuf,
    errors: Vec<(Option<usize>, String)>,
    warnings: Vec<String>,
    secrets: Secrets,
}

impl Checker<'_> {
    fn error(&mut self, path: &str, span: Option<&Range<usize>>, msg: impl fmt::Display) {
        match span {
            Some(span) => {
                let line = line_of(self.text, span);
                self.errors
                    .push((Some(line), format!("{path}: {msg} (line {line})")));
            }
            None => self.errors.push((None, format!("{path}: {msg}"))),
        }
    }

    /// A secret that cannot be read here and now: an error, except for `check-config`
    /// (see [`Secrets::MayBeAbsent`]), where it is a warning.
    fn unreadable_secret(&mut self, path: &str, span: Option<&Range<usize>>, msg: SecretProblem) {
        match (self.secrets, span) {
            (Secrets::MayBeAbsent, Some(span)) if msg.unavailable => self.warn(
                path,
                span,
                format!("{msg} (not an error for check-config; `run`, `sync` and `scan` refuse to start without it)"),
            ),
            _ => self.error(path, span, msg),
        }
    }

    fn warn(&mut self, path: &str, span: &Range<usize>, msg: impl fmt::Display) {
        let line = line_of(self.text, span);
        self.warnings.push(format!("{path}: {msg} (line {line})"));
    }

    fn unknown_keys(&mut self, t: Tbl<'_, '_>, known: &[&str]) {
        for (key, _) in t.table.iter() {
            let name: &str = key.get_ref();
            if known.contains(&name) {
                continue;
            }
            let hint = match closest(name, known) {
                Some(k) => format!("did you mean \"{k}\"?"),
                None => format!("expected one of {}", known.join(", ")),
            };
            self.error(
                &t.field(name),
                Some(&key.span()),
                format!("unknown key; {hint}"),
            );
        }
    }

    fn wrong_type(&mut self, path: &str, v: &Val<'_>, expected: &str) {
        let found = v.get_ref().type_str();
        self.error(
            path,
            Some(&v.span()),
            format!("must be {expected}, not {}", article(found)),
        );
    }

    fn string(&mut self, t: Tbl<'_, '_>, key: &str) -> Option<String> {
        let v = t.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.wrong_type(&t.field(key), v, "a string");
                None
            }
        }
    }

    /// A required, non-empty string.
    fn required_string(&mut self, t: Tbl<'_, '_>, key: &str, what: &str) -> Option<String> {
        match t.get(key) {
            None => {
                self.error(&t.field(key), Some(t.span), format!("is required ({what})"));
                None
            }
            Some(v) => {
                let s = self.string(t, key)?;
                if s.trim().is_empty() {
                    self.error(
                        &t.field(key),
                        Some(&v.span()),
                        format!("must not be empty ({what})"),
                    );
                    return None;
                }
                Some(s)
            }
        }
    }

    fn boolean(&mut self, t: Tbl<'_, '_>, key: &str) -> Option<bool> {
        let v = t.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(&t.field(key), v, "true or false");
                None
            }
        }
    }

    /// A share: a number from 0 (exclusive) to 1 (inclusive), such as `0.5`.
    fn share(&mut self, t: Tbl<'_, '_>, key: &str) -> Option<f64> {
        let v = t.get(key)?;
        let expected = "a share between 0 and 1, such as 0.5 (1.0 turns the guard off)";
        let x = match v.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => i.as_str().parse::<f64>().ok(),
            _ => None,
        };
        match x {
            Some(x) if x > 0.0 && x <= 1.0 => Some(x),
            Some(x) => {
                self.error(
                    &t.field(key),
                    Some(&v.span()),
                    format!("{x} is out of range; must be {expected}"),
                );
                None
            }
            None => {
                self.wrong_type(&t.field(key), v, expected);
                None
            }
        }
    }

    /// A whole number of at least `min`.
    fn count(&mut self, t: Tbl<'_, '_>, key: &str, min: u64) -> Option<usize> {
        let v = t.get(key)?;
        let expected = format!("a whole number of at least {min}");
        match v.get_ref() {
            DeValue::Integer(i) => {
                let n = i128::from_str_radix(i.as_str(), i.radix()).ok();
                match n.and_then(|n| usize::try_from(n).ok()) {
                    Some(n) if n as u64 >= min => Some(n),
                    _ => {
                        self.error(
                            &t.field(key),
                            Some(&v.span()),
                            format!("{i} is too small; must be {expected}"),
                        );
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(&t.field(key), v, &expected);
                None
            }
        }
    }

    fn duration(&mut self, t: Tbl<'_, '_>, key: &str, allow_zero: bool) -> Option<Duration> {
        let v = t.get(key)?;
        let s = self.string(t, key)?;
        match parse_duration(&s) {
            Ok(d) if d.is_zero() && !allow_zero => {
                self.error(
                    &t.field(key),
                    Some(&v.span()),
                    format!("\"{s}\" must be more than zero"),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(&t.field(key), Some(&v.span()), e);
                None
            }
        }
    }

    /// A path; relative ones are taken from the config file's folder.
    fn path(&mut self, t: Tbl<'_, '_>, key: &str) -> Option<PathBuf> {
        let s = self.string(t, key)?;
        Some(self.base_dir.join(s))
    }

    fn url(&mut self, t: Tbl<'_, '_>, key: &str, example: &str) -> Option<String> {
        let v = t.get(key)?;
        let s = self.string(t, key)?;
        match reqwest::Url::parse(&s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(s),
            _ => {
                self.error(
                    &t.field(key),
                    Some(&v.span()),
                    format!("\"{s}\" is not an http(s) URL (e.g. \"{example}\")"),
                );
                None
            }
        }
    }

    fn table<'a, 'i>(&mut self, path: &str, v: &'a Val<'i>, what: &str) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(path, v, what);
                None
            }
        }
    }

    fn config(&mut self, doc: &Spanned<DeTable<'_>>) -> Config {
        let span = doc.span();
        let top = Tbl {
            path: "config",
            table: doc.get_ref(),
            span: &span,
        };
        for (key, _) in top.table.iter() {
            let name: &str = key.get_ref();
            if !TOP_KEYS.contains(&name) {
                let hint = match closest(name, TOP_KEYS) {
                    Some(k) => format!("did you mean [{k}]?"),
                    None => format!("expected {}", TOP_KEYS.join(", ")),
                };
                self.error(
                    name,
                    Some(&key.span()),
                    format!("unknown top-level key; {hint}"),
                );
            }
        }
        let store = match top.get("store") {
            Some(v) => self.store(v),
            None => {
                self.error(
                    "store",
                    None,
                    "the [store] section is required; add [store] with path = \"/var/lib/scansync/scansync.db\"",
                );
                None
            }
        };
        let daemon = top
            .get("daemon")
            .map(|v| self.daemon(v))
            .unwrap_or_default();
        let mut instances = BTreeMap::new();
        if let Some(v) = top.get("instances") {
            if let Some(table) = self.table("instances", v, "a table of [instances.NAME] tables") {
                for (name, value) in table.iter() {
                    let path = format!("instances.{}", name.get_ref());
                    if let Some(instance) = self.instance(&path, value) {
                        instances.insert(name.get_ref().to_string(), instance);
                    }
                }
            }
        }
        let mut scans = Vec::new();
        if let Some(v) = top.get("scans") {
            match v.get_ref() {
                DeValue::Array(items) => {
                    let mut names: BTreeMap<String, (usize, Range<usize>)> = BTreeMap::new();
                    // Instances that failed their own checks still count as defined here, so
                    // a scan naming one is not reported a second time.
                    let defined: Vec<String> = match top.get("instances").map(|v| v.get_ref()) {
                        Some(DeValue::Table(t)) => {
                            t.iter().map(|(k, _)| k.get_ref().to_string()).collect()
                        }
                        _ => Vec::new(),
                    };
                    for (index, item) in items.iter().enumerate() {
                        let path = format!("scans[{index}]");
                        if let Some(scan) = self.scan(&path, item, &defined, &instances) {
                            self.unique_name(&path, item, &scan.name, index, &mut names);
                            scans.push(scan);
                        }
                    }
                }
                _ => self.wrong_type("scans", v, "a list of [[scans]] tables"),
            }
        }
        let mut webhooks = BTreeMap::new();
        if let Some(v) = top.get("webhooks") {
            if let Some(table) = self.table("webhooks", v, "a table of [webhooks.NAME] tables") {
                // Scans that failed their own checks still count as defined here, so a
                // webhook naming one is not reported a second time.
                let defined: Vec<String> = match top.get("scans").map(|v| v.get_ref()) {
                    Some(DeValue::Array(items)) => items
                        .iter()
                        .filter_map(|item| match item.get_ref() {
                            DeValue::Table(t) => match t.get("name").map(|n| n.get_ref()) {
                                Some(DeValue::String(name)) => Some(name.to_string()),
                                _ => None,
                            },
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                for (name, value) in table.iter() {
                    let path = format!("webhooks.{}", name.get_ref());
                    if let Some(webhook) = self.webhook(&path, value, &defined) {
                        webhooks.insert(name.get_ref().to_string(), webhook);
                    }
                }
            }
        }
        let server = top.get("server").and_then(|v| self.server(v));
        let mut suppress = Vec::new();
        if let Some(v) = top.get("suppress") {
            match v.get_ref() {
                DeValue::Array(items) => {
                    let defined: Vec<String> = scans.iter().map(|s| s.name.clone()).collect();
                    let mut names: BTreeMap<String, usize> = BTreeMap::new();
                    for (index, item) in items.iter().enumerate() {
                        let path = format!("suppress[{index}]");
                        if let Some(rule) = self.suppress_rule(&path, index, item, &defined) {
                            if let Some(first) = names.get(&rule.name) {
                                self.error(
                                    &format!("{path}.name"),
                                    Some(&item.span()),
                                    format!(
                                        "\"{}\" is already the name of suppress[{first}]; \
                                         rule names must be unique",
                                        rule.name
                                    ),
                                );
                            } else {
                                names.insert(rule.name.clone(), index);
                            }
                            suppress.push(rule);
                        }
                    }
                }
                _ => self.wrong_type("suppress", v, "a list of [[suppress]] tables"),
            }
        }
        Config {
            store: store.unwrap_or(StoreConfig {
                path: PathBuf::new(),
                retention: Retention::default(),
            }),
            daemon,
            instances,
            scans,
            webhooks,
            server,
            suppress,
        }
    }

    fn suppress_rule(
        &mut self,
        path: &str,
        index: usize,
        v: &Val<'_>,
        scans: &[String],
    ) -> Option<SuppressRule> {
        let table = self.table(path, v, "a table ([[suppress]])")?;
        let span = v.span();
        let t = Tbl {
            path,
            table,
            span: &span,
        };
        self.unknown_keys(t, SUPPRESS_KEYS);
        let name = match t.get("name") {
            Some(_) => self.required_string(t, "name", "a name for the rule's triage events"),
            None => Some(format!("suppress[{index}]")),
        };
        let scan_names = self.string_list(t, "scans");
        if let Some(DeValue::Array(items)) = t.get("scans").map(|v| v.get_ref()) {
            for (i, item) in items.iter().enumerate() {
                let DeValue::String(scan) = item.get_ref() else {
                    continue;
                };
                if !scans.iter().any(|s| s.as_str() == scan.as_ref()) {
                    let known = if scans.is_empty() {
                        "none is defined".to_string()
                    } else {
                        format!("defined: {}", scans.join(", "))
                    };
                    self.error(
                        &format!("{}[{i}]", t.field("scans")),
                        Some(&item.span()),
                        format!("no scan named \"{scan}\" ({known})"),
                    );
                }
            }
        }
        let matcher = |checker: &mut Self, key: &str| -> Option<String> {
            let value = checker.string(t, key)?;
            if value.trim().is_empty() {
                let blame = t.get(key).map(|v| v.span());
                checker.error(
                    &t.field(key),
                    blame.as_ref(),
                    "must not be empty (leave the key out to match any)",
                );
                return None;
            }
            Some(value)
        };
        let rule = matcher(self, "rule");
        let glob = matcher(self, "path");
        let title = matcher(self, "title");
        if ["rule", "path", "title"].iter().all(|k| t.get(k).is_none()) {
            self.error(
                path,
                Some(t.span),
                "matches every finding of its scans; give at least one of rule, path or title",
            );
        }
        if let (Some(pattern), Some(v)) = (&glob, t.get("path")) {
            if pattern.starts_with('!') {
                self.error(
                    &t.field("path"),
                    Some(&v.span()),
                    format!(
                        "\"{pattern}\" starts with \"!\": negated patterns are not supported; \
                         write the paths to suppress"
                    ),
                );
            }
        }
        let state = match t.get("state") {
            None => {
                self.error(
                    &t.field("state"),
                    Some(t.span),
                    "is required (false_positive or accepted)",
                );
                None
            }
            Some(v) => match self.string(t, "state")?.as_str() {
                "false_positive" => Some(SuppressState::FalsePositive),
                "accepted" => Some(SuppressState::Accepted),
                other => {
                    self.error(
                        &t.field("state"),
                        Some(&v.span()),
                        format!(
                            "\"{other}\" is not a triage state; use false_positive or accepted"
                        ),
                    );
                    None
                }
            },
        };
        let reason = self.required_string(
            t,
            "reason",
            "why these findings need no action; it is shown with each of them",
        );
        let until = t.get("until").and_then(|v| {
            let word = self.string(t, "until")?;
            match chrono::NaiveDate::parse_from_str(&word, "%Y-%m-%d") {
                Ok(d) => Some(d),
                Err(_) => {
                    self.error(
                        &t.field("until"),
                        Some(&v.span()),
                        format!("\"{word}\" is not a date; write it as YYYY-MM-DD"),
                    );
                    None
                }
            }
        });
        Some(SuppressRule {
            name: name?,
            scans: scan_names,
            rule,
            path: glob,
            title,
            state: state?,
            reason: reason?,
            until,
        })
    }

    fn webhook(&mut self, path: &str, v: &Val<'_>, scans: &[String]) -> Option<WebhookConfig> {
        let table = self.table(path, v, "a table ([webhooks.NAME])")?;
        let span = v.span();
        let t = Tbl {
            path,
            table,
            span: &span,
        };
        self.unknown_keys(t, WEBHOOK_KEYS);
        let url = match t.get("url") {
            Some(_) => self.url(t, "url", "https://siem.example.com/hooks/scansync"),
            None => {
                self.error(
                    &t.field("url"),
                    Some(t.span),
                    "is required (the http(s) URL notifications are POSTed to)",
                );
                None
            }
        };
        let events = match t.get("events") {
            None => default_webhook_events(),
            Some(ev) => {
                // Reports a value that is not a list of strings.
                self.string_list(t, "events");
                let items: Vec<&Val<'_>> = match ev.get_ref() {
                    DeValue::Array(items) => items.iter().collect(),
                    _ => Vec::new(),
                };
                if matches!(ev.get_ref(), DeValue::Array(a) if a.is_empty()) {
                    self.error(
                        &t.field("events"),
                        Some(&ev.span()),
                        "is empty, so nothing would ever be sent; list at least one of findings.new, findings.fixed, findings.reopened, run.failed (or remove the webhook)",
                    );
                }
                let mut events = Vec::new();
                for (index, item) in items.into_iter().enumerate() {
                    let DeValue::String(word) = item.get_ref() else {
                        continue;
                    };
                    match word.parse::<crate::webhooks::EventType>() {
                        Ok(e) if !events.contains(&e) => events.push(e),
                        Ok(_) => {}
                        Err(msg) => self.error(
                            &format!("{}[{index}]", t.field("events")),
                            Some(&item.span()),
                            msg,
                        ),
                    }
                }
                events
            }
        };
        let min_severity = t.get("min_severity").and_then(|v| {
            let s = self.string(t, "min_severity")?;
            match s.parse::<Severity>() {
                Ok(sev) => Some(sev),
                Err(e) => {
                    self.error(&t.field("min_severity"), Some(&v.span()), e);
                    None
                }
            }
        });
        let scan_names = self.string_list(t, "scans");
        if let Some(DeValue::Array(items)) = t.get("scans").map(|v| v.get_ref()) {
            for (index, item) in items.iter().enumerate() {
                let DeValue::String(name) = item.get_ref() else {
                    continue;
                };
                if !scans.iter().any(|s| s.as_str() == name.as_ref()) {
                    let known = if scans.is_empty() {
                        "none is defined".to_string()
                    } else {
                        format!("defined: {}", scans.join(", "))
                    };
                    self.error(
                        &format!("{}[{index}]", t.field("scans")),
                        Some(&item.span()),
                        format!("no scan named \"{name}\" ({known})"),
                    );
                }
            }
        }
        let mut w = WebhookConfig {
            url: url.unwrap_or_default(),
            secret_file: self.string(t, "secret_file").map(PathBuf::from),
            secret_env: self.string(t, "secret_env"),
            events,
            min_severity,
            scans: scan_names,
            timeout: self
                .duration(t, "timeout", false)
                .unwrap_or_else(default_webhook_timeout),
            resolved_secret: None,
        };
        self.webhook_secret(t, &mut w);
        Some(w)
    }

    /// Checks that exactly one secret source is given, reads the secret and checks that it
    /// makes a signing key. No message ever contains the secret.
    fn webhook_secret(&mut self, t: Tbl<'_, '_>, w: &mut WebhookConfig) {
        let Some((key, path, secret)) = self.secret_source(
            t,
            "no signing secret given; set exactly one of secret_file or secret_env",
        ) else {
            return;
        };
        match crate::webhooks::sign::SigningKey::from_secret(&secret) {
            Ok(k) => {
                let key_len = k.len();
                if key_len < crate::webhooks::sign::RECOMMENDED_KEY_BYTES {
                    self.warn(
                        &t.field(key),
                        &t.span_of(key),
                        format!(
                            "the signing key is {key_len} bytes; Standard Webhooks asks for at least {} random bytes (e.g. `echo \"whsec_$(openssl rand -base64 32)\"`)",
                            crate::webhooks::sign::RECOMMENDED_KEY_BYTES
                        ),
                    );
                }
                if path.is_some() {
                    w.secret_file = path;
                }
                w.resolved_secret = Some(secret);
            }
            Err(e) => {
                let blame = t.get(key).map(|v| v.span());
                self.error(&t.field(key), blame.as_ref(), format!("the secret {e}"));
            }
        }
    }

    /// Reads the secret of a table that takes exactly one of `secret_file` / `secret_env`
    /// (an outgoing webhook, a scan's incoming one): the key it came from, the file actually
    /// read, and the secret. Every problem is reported; `missing` says what to do when
    /// neither key is set.
    fn secret_source(
        &mut self,
        t: Tbl<'_, '_>,
        missing: &str,
    ) -> Option<(&'static str, Option<PathBuf>, Secret)> {
        let mut given: Vec<&'static str> = SECRET_KEYS
            .iter()
            .copied()
            .filter(|k| t.get(k).is_some())
            .collect();
        given.sort_by_key(|k| t.span_of(k).start);
        match given.as_slice() {
            [] => {
                self.error(t.path, Some(t.span), missing);
                return None;
            }
            [_] => {}
            [_, second, ..] => {
                self.error(
                    &t.field(second),
                    Some(&t.span_of(second)),
                    format!(
                        "secret given twice ({}); keep exactly one",
                        given.join(" and ")
                    ),
                );
                return None;
            }
        }
        let key = given[0];
        let raw = self.string(t, key)?;
        let read = if key == "secret_file" {
            self.secret_from_file(t, key, "secret", Path::new(&raw))
                .map(|(path, secret)| (Some(path), secret))
        } else {
            secret_from_env(&raw, "secret", "secret_file").map(|secret| (None, secret))
        };
        match read {
            Ok((path, secret)) => Some((key, path, secret)),
            Err(msg) => {
                let span = t.get(key).map(|v| v.span());
                self.unreadable_secret(&t.field(key), span.as_ref(), msg);
                None
            }
        }
    }

    fn unique_name(
        &mut self,
        path: &str,
        item: &Val<'_>,
        name: &str,
        index: usize,
        names: &mut BTreeMap<String, (usize, Range<usize>)>,
    ) {
        if name.is_empty() {
            return;
        }
        let span = match item.get_ref() {
            DeValue::Table(t) => t
                .get_key_value("name")
                .map(|(_, v)| v.span())
                .unwrap_or_else(|| item.span()),
            _ => item.span(),
        };
        if let Some((first, first_span)) = names.get(name) {
            let first_line = line_of(self.text, first_span);
            self.error(
                &format!("{path}.name"),
                Some(&span),
                format!("\"{name}\" is already the name of scans[{first}], on line {first_line}; scan names must be unique"),
            );
        } else {
            names.insert(name.to_string(), (index, span));
        }
    }

    fn store(&mut self, v: &Val<'_>) -> Option<StoreConfig> {
        let table = self.table("store", v, "a table ([store])")?;
        let span = v.span();
        let t = Tbl {
            path: "store",
            table,
            span: &span,
        };
        self.unknown_keys(t, STORE_KEYS);
        let path = self.required_string(
            t,
            "path",
            "the SQLite file, e.g. \"/var/lib/scansync/scansync.db\"",
        );
        let retention = match t.get("retention") {
            Some(v) => self.retention(&t.field("retention"), v),
            None => Retention::default(),
        };
        Some(StoreConfig {
            path: self.base_dir.join(path?),
            retention,
        })
    }

    fn retention(&mut self, path: &str, v: &Val<'_>) -> Retention {
        let mut r = Retention::default();
        let Some(table) = self.table(
            path,
            v,
            "a table (retention = { runs = \"180d\", events = \"180d\", ... })",
        ) else {
            return r;
        };
        let span = v.span();
        let t = Tbl {
            path,
            table,
            span: &span,
        };
        self.unknown_keys(t, RETENTION_KEYS);
        for (key, slot) in [
            ("runs", &mut r.runs),
            ("events", &mut r.events),
            ("notifications", &mut r.notifications),
            ("webhook_deliveries", &mut r.webhook_deliveries),
            ("branch_scopes", &mut r.branch_scopes),
        ] {
            if let Some(d) = self.duration(t, key, false) {
                *slot = d;
            }
        }
        r
    }

    fn daemon(&mut self, v: &Val<'_>) -> DaemonConfig {
        let mut d = DaemonConfig::default();
        let Some(table) = self.table("daemon", v, "a table ([daemon])") else {
            return d;
        };
        let span = v.span();
        let t = Tbl {
            path: "daemon",
            table,
            span: &span,
        };
        self.unknown_keys(t, DAEMON_KEYS);
        if let Some(n) = self.count(t, "concurrency", 1) {
            d.concurrency = n;
        }
        if let Some(n) = self.count(t, "per_instance_concurrency", 1) {
            d.per_instance_concurrency = n;
        }
        if let Some(x) = self.duration(t, "shutdown_timeout", true) {
            d.shutdown_timeout = x;
        }
        if let Some(x) = self.duration(t, "jitter", true) {
            d.jitter = x;
        }
        if let Some(x) = self.duration(t, "poll_interval", false) {
            d.poll_interval = x;
        }
        if let Some(x) = self.share(t, "fix_guard") {
            d.fix_guard = x;
        }
        d
    }

    fn instance(&mut self, path: &str, v: &Val<'_>) -> Option<InstanceConfig> {
        let table = self.table(path, v, "a table ([instances.NAME])")?;
        let span = v.span();
        let t = Tbl {
            path,
            table,
            span: &span,
        };
        self.unknown_keys(t, INSTANCE_KEYS);
        let vendor = self.required_string(t, "vendor", "one of codethreat, saltsecurity");
        let url = self.url(t, "url", "https://cloud.codethreat.com");
        if let Some(u) = url.as_deref().and_then(|u| reqwest::Url::parse(u).ok()) {
            let host = u.host_str().unwrap_or_default();
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if u.scheme() == "http" && !loopback {
                self.warn(
                    &t.field("url"),
                    &t.span_of("url"),
                    format!("{u} is plain HTTP: the API token travels in clear text to it; use https:// unless a trusted tunnel carries it"),
                );
            }
        }
        let mut i = InstanceConfig {
            vendor: vendor.clone().unwrap_or_default(),
            url,
            region: self.string(t, "region"),
            organization: self.string(t, "organization"),
            token_file: self.string(t, "token_file").map(PathBuf::from),
            token_env: self.string(t, "token_env"),
            credential: self.string(t, "credential"),
            token: None,
            insecure: self.boolean(t, "insecure").unwrap_or(false),
            ca_file: self.path(t, "ca_file"),
            proxy: self.url(t, "proxy", "http://proxy.internal:3128"),
            timeout: self.duration(t, "timeout", false),
            resolved_token: None,
        };
        // The inline token is read without echoing it in any message, even a type error.
        if let Some(tv) = t.get("token") {
            match tv.get_ref() {
                DeValue::String(s) => i.token = Some(s.to_string()),
                other => self.error(
                    &t.field("token"),
                    Some(&tv.span()),
                    format!("must be a string, not {}", article(other.type_str())),
                ),
            }
        }
        if let Some(vendor) = vendor {
            match crate::vendors::spec(&vendor) {
                Some(spec) => {
                    for message in (spec.validate)(&i) {
                        let (field, rest) = message.split_once(':').unwrap_or(("", &message));
                        let field = field.trim();
                        let blame = t
                            .get(field)
                            .map(|v| v.span())
                            .unwrap_or_else(|| span.clone());
                        self.error(&t.field(field), Some(&blame), rest.trim());
                    }
                }
                None => {
                    let known: Vec<&str> =
                        crate::vendors::REGISTRY.iter().map(|s| s.name).collect();
                    let span = t.get("vendor").map(|v| v.span());
                    self.error(
                        &t.field("vendor"),
                        span.as_ref(),
                        format!(
                            "unknown vendor \"{vendor}\"; known vendors: {}",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        if i.insecure {
            self.warn(
                &t.field("insecure"),
                &t.span_of("insecure"),
                "TLS certificate verification is OFF for this instance: anyone on the network path can read the token; use ca_file for a private CA instead",
            );
        }
        if let Some(ca) = &i.ca_file {
            if let Err(e) = std::fs::metadata(ca) {
                let span = t.get("ca_file").map(|v| v.span());
                self.error(
                    &t.field("ca_file"),
                    span.as_ref(),
                    format!("cannot read {}: {e}", ca.display()),
                );
            }
        }
        self.token(t, &mut i);
        Some(i)
    }

    /// Checks that exactly one token source is given and reads the token from it.
    fn token(&mut self, t: Tbl<'_, '_>, i: &mut InstanceConfig) {
        // In file order, so "given twice" blames the later line.
        let mut given: Vec<&str> = TOKEN_KEYS
            .iter()
            .copied()
            .filter(|k| t.get(k).is_some())
            .collect();
        given.sort_by_key(|k| t.span_of(k).start);
        match given.as_slice() {
            [] => {
                self.error(
                    t.path,
                    Some(t.span),
                    "no token given; set exactly one of token_file, token_env, credential or token",
                );
                return;
            }
            [_] => {}
            [_, second, ..] => {
                self.error(
                    &t.field(second),
                    Some(&t.span_of(second)),
                    format!(
                        "token given twice ({}); keep exactly one token source",
                        given.join(" and ")
                    ),
                );
                return;
            }
        }
        let (key, read) = if let Some(file) = i.token_file.clone() {
            ("token_file", self.token_from_file(t, &file, i))
        } else if let Some(var) = i.token_env.clone() {
            ("token_env", token_from_env(&var))
        } else if let Some(name) = i.credential.clone() {
            ("credential", token_from_credential(&name))
        } else if let Some(token) = i.token.clone() {
            self.warn(
                &t.field("token"),
                &t.span_of("token"),
                "inline token in the config file; prefer token_file, token_env or credential so the file can be shared and backed up safely",
            );
            (
                "token",
                non_empty(token, "is empty").map_err(SecretProblem::from),
            )
        } else {
            // A source of the wrong type was already reported.
            return;
        };
        match read {
            Ok(secret) => i.resolved_token = Some(secret),
            Err(msg) => {
                let span = t.get(key).map(|v| v.span());
                self.unreadable_secret(&t.field(key), span.as_ref(), msg)
            }
        }
    }

    fn token_from_file(
        &mut self,
        t: Tbl<'_, '_>,
        file: &Path,
        i: &mut InstanceConfig,
    ) -> Result<Secret, SecretProblem> {
        let (path, secret) = self.secret_from_file(t, "token_file", "token", file)?;
        i.token_file = Some(path);
        Ok(secret)
    }

    /// Reads a secret (`what`: "token", "secret") from the file `key` names: `%d/` is the
    /// systemd credentials folder, relative paths start at the config file's folder, and a
    /// file readable by group or others is warned about. Returns the path actually read.
    fn secret_from_file(
        &mut self,
        t: Tbl<'_, '_>,
        key: &str,
        what: &str,
        file: &Path,
    ) -> Result<(PathBuf, Secret), SecretProblem> {
        let raw = file.to_string_lossy().into_owned();
        let path = match raw.strip_prefix("%d/") {
            Some(rest) => match std::env::var_os("CREDENTIALS_DIRECTORY") {
                Some(dir) if !dir.is_empty() => PathBuf::from(dir).join(rest),
                _ => {
                    return Err(SecretProblem::unavailable(format!(
                        "\"{raw}\" needs $CREDENTIALS_DIRECTORY, which is unset; systemd sets it for units with LoadCredential=, otherwise give a plain path"
                    )))
                }
            },
            None => self.base_dir.join(&raw),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            SecretProblem::unavailable(format!("cannot read {what} file {}: {e}", path.display()))
        })?;
        self.warn_if_readable_by_others(t, key, &path);
        let secret = non_empty(text, &format!("{what} file {} is empty", path.display()))?;
        Ok((path, secret))
    }

    fn scan(
        &mut self,
        path: &str,
        v: &Val<'_>,
        instances: &[String],
        valid: &BTreeMap<String, InstanceConfig>,
    ) -> Option<ScanConfig> {
        let table = self.table(path, v, "a table ([[scans]])")?;
        let span = v.span();
        let t = Tbl {
            path,
            table,
            span: &span,
        };
        self.unknown_keys(t, SCAN_KEYS);
        let name = self.required_string(t, "name", "a unique name for this scan");
        if let Some(n) = name.as_deref().filter(|n| n.contains('@')) {
            // A scan's runs on another branch are stored as NAME@BRANCH: a configured name
            // with an @ could be another scan's branch scope and share its findings.
            let span = t.get("name").map(|v| v.span());
            self.error(
                &t.field("name"),
                span.as_ref(),
                format!("\"{n}\" has an @, which scansync keeps for a scan's runs on another branch (NAME@BRANCH); use another character, e.g. \"{}\"", n.replace('@', "-")),
            );
        }
        let instance = self.required_string(t, "instance", "the name of an [instances.NAME] table");
        if let Some(inst) = &instance {
            if !instances.contains(inst) {
                let known: Vec<&str> = instances.iter().map(String::as_str).collect();
                let known = if known.is_empty() {
                    "none is defined".to_string()
                } else {
                    format!("defined: {}", known.join(", "))
                };
                let span = t.get("instance").map(|v| v.span());
                self.error(
                    &t.field("instance"),
                    span.as_ref(),
                    format!("no instance named \"{inst}\" ({known}); add an [instances.{inst}] table or fix the name"),
                );
            }
        }
        let bind_to = self.required_string(t, "bind_to", "the vendor project or API asset to read");
        let tags = self.string_list(t, "tags");
        let metadata = self.string_map(t, "metadata");
        let min_severity = t.get("min_severity").and_then(|v| {
            let s = self.string(t, "min_severity")?;
            match s.parse::<Severity>() {
                Ok(sev) => Some(sev),
                Err(e) => {
                    self.error(&t.field("min_severity"), Some(&v.span()), e);
                    None
                }
            }
        });
        let schedule = match t.get("schedule") {
            Some(v) => self.schedule(&t.field("schedule"), v),
            None => {
                self.error(
                    &t.field("schedule"),
                    Some(t.span),
                    "is required: \"now\", { at = \"...\" }, { cron = \"...\" } or { every = \"...\" }",
                );
                None
            }
        };
        let vendor = instance
            .as_ref()
            .and_then(|i| valid.get(i))
            .map(|i| i.vendor.clone());
        if let (Some(vendor), Some(hook)) = (&vendor, t.get("webhook")) {
            if crate::vendors::spec(vendor).is_some_and(|s| !s.starts_scans) {
                self.error(
                    &t.field("webhook"),
                    Some(&hook.span()),
                    format!("{vendor} starts no scans (scansync reads its findings as they are), so a push has nothing to start; remove the webhook table, or bind the scan to an instance that scans code"),
                );
            }
        }
        Some(ScanConfig {
            name: name.unwrap_or_default(),
            instance: instance.unwrap_or_default(),
            bind_to: bind_to.unwrap_or_default(),
            branch: self.string(t, "branch"),
            environment: self.string(t, "environment"),
            tags,
            metadata,
            min_severity,
            fix_guard: self.share(t, "fix_guard"),
            enabled: self.boolean(t, "enabled").unwrap_or(true),
            schedule: schedule.unwrap_or(Schedule::Now),
            timeout: self
                .duration(t, "timeout", false)
                .unwrap_or_else(default_scan_timeout),
            webhook: t
                .get("webhook")
                .and_then(|v| self.scan_hook(&t.field("webhook"), v)),
        })
    }

    fn server(&mut self, v: &Val<'_>) -> Option<ServerConfig> {
        let table = self.table("server", v, "a table ([server])")?;
        let span = v.span();
        let t = Tbl {
            path: "server",
            table,
            span: &span,
        };
        self.unknown_keys(t, SERVER_KEYS);
        let listen = self
            .required_string(t, "listen", "the address to listen on, e.g. \"127.0.0.1:8787\"")
            .and_then(|s| match s.trim().parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    let span = t.get("listen").map(|v| v.span());
                    self.error(
                        &t.field("listen"),
                        span.as_ref(),
                        format!(
                            "\"{s}\" is not an IP address and port; write e.g. \"127.0.0.1:8787\", \"0.0.0.0:8787\" or \"[::1]:8787\" (host names are not resolved)"
                        ),
                    );
                    None
                }
            });
        let cert = self.path(t, "tls_cert_file");
        let key = self.path(t, "tls_key_file");
        let behind_proxy = self.boolean(t, "behind_proxy").unwrap_or(false);
        match (&cert, &key) {
            (Some(cert), Some(key)) => {
                if let Err((which, e)) = crate::server::tls::check_files(cert, key) {
                    let field = if which == crate::server::tls::TlsFile::Cert {
                        "tls_cert_file"
                    } else {
                        "tls_key_file"
                    };
                    let span = t.get(field).map(|v| v.span());
                    self.error(&t.field(field), span.as_ref(), e);
                }
                self.warn_if_readable_by_others(t, "tls_key_file", key);
            }
            (Some(_), None) | (None, Some(_)) => {
                let (given, missing) = if cert.is_some() {
                    ("tls_cert_file", "tls_key_file")
                } else {
                    ("tls_key_file", "tls_cert_file")
                };
                self.error(
                    &t.field(missing),
                    Some(&t.span_of(given)),
                    format!("is required when {given} is set: give both (HTTPS) or neither"),
                );
            }
            (None, None) => {}
        }
        let metrics_token_file = t.get("metrics_token_file").and_then(|v| {
            let raw = self.string(t, "metrics_token_file")?;
            match self.secret_from_file(t, "metrics_token_file", "metrics token", Path::new(&raw)) {
                Ok((path, secret)) => Some((path, secret)),
                Err(e) => {
                    self.unreadable_secret(&t.field("metrics_token_file"), Some(&v.span()), e);
                    None
                }
            }
        });
        let listen = listen?;
        if !listen.ip().is_loopback() && cert.is_none() && !behind_proxy {
            self.warn(
                &t.field("listen"),
                &t.span_of("listen"),
                format!(
                    "{listen} is reachable from other machines over plain HTTP: webhook payloads and the metrics token travel unencrypted; set tls_cert_file and tls_key_file, or behind_proxy = true when a TLS-terminating proxy is in front"
                ),
            );
        }
        if !listen.ip().is_loopback() && !behind_proxy && t.get("metrics_token_file").is_none() {
            // /metrics names every scan and counts its findings by severity: not for
            // whoever can reach the port.
            self.error(
                &t.field("metrics_token_file"),
                Some(&t.span_of("listen")),
                format!(
                    "is required when listen ({listen}) is reachable from other machines: /metrics names the scans and counts their findings; write a token to a file (`scansync webhook-secret > FILE`) and name it here, or set behind_proxy = true when a proxy in front guards the listener"
                ),
            );
        }
        let max_connections = self
            .count(t, "max_connections", 1)
            .unwrap_or(DEFAULT_MAX_CONNECTIONS);
        let (metrics_token_file, metrics_token) = match metrics_token_file {
            Some((path, secret)) => (Some(path), Some(secret)),
            None => (None, None),
        };
        Some(ServerConfig {
            listen,
            tls_cert_file: cert,
            tls_key_file: key,
            behind_proxy,
            metrics_token_file,
            metrics_token,
            max_connections,
        })
    }

    fn scan_hook(&mut self, path: &str, v: &Val<'_>) -> Option<ScanHookConfig> {
        let table = self.table(
            path,
            v,
            "a table ({ platform = \"github\", secret_env = \"...\", branches = [\"main\"] })",
        )?;
        let span = v.span();
        let t = Tbl {
            path,
            table,
            span: &span,
        };
        self.unknown_keys(t, SCAN_HOOK_KEYS);
        let names: Vec<&str> = Platform::ALL.iter().map(|p| p.as_str()).collect();
        let platform = self
            .required_string(t, "platform", &names.join(", "))
            .and_then(|p| match Platform::ALL.iter().find(|k| k.as_str() == p) {
                Some(k) => Some(*k),
                None => {
                    let hint = match closest(&p, &names) {
                        Some(k) => format!("did you mean \"{k}\"?"),
                        None => format!("use one of {}", names.join(", ")),
                    };
                    let span = t.get("platform").map(|v| v.span());
                    self.error(
                        &t.field("platform"),
                        span.as_ref(),
                        format!("\"{p}\" is not a webhook platform; {hint}"),
                    );
                    None
                }
            });
        let branches = match t.get("branches") {
            None => {
                self.error(
                    &t.field("branches"),
                    Some(t.span),
                    "is required: the branches whose pushes start this scan, e.g. [\"main\", \"release/*\"] ([\"**\"] for every branch)",
                );
                None
            }
            Some(bv) => {
                let list = self.string_list(t, "branches");
                if matches!(bv.get_ref(), DeValue::Array(items) if items.is_empty()) {
                    self.error(
                        &t.field("branches"),
                        Some(&bv.span()),
                        "is empty, so no push would ever start the scan; list at least one branch (glob), e.g. [\"main\"]",
                    );
                }
                if let Some(bad) = list.iter().position(|b| b.trim().is_empty()) {
                    self.error(
                        &format!("{}[{bad}]", t.field("branches")),
                        Some(&bv.span()),
                        "must not be empty",
                    );
                }
                for (i, pattern) in list.iter().enumerate() {
                    if let Some(why) = branch_glob_problem(pattern) {
                        self.error(
                            &format!("{}[{i}]", t.field("branches")),
                            Some(&bv.span()),
                            why,
                        );
                    }
                }
                Some(list)
            }
        };
        let secret = self.scan_hook_secret(t);
        Some(ScanHookConfig {
            platform: platform?,
            secret_file: secret.as_ref().and_then(|(p, _)| p.clone()),
            // Read (and type-checked) by webhook_secret; only its name is kept here.
            secret_env: match t.get("secret_env").map(|v| v.get_ref()) {
                Some(DeValue::String(name)) => Some(name.to_string()),
                _ => None,
            },
            branches: branches?,
            secret: secret.map(|(_, s)| s),
        })
    }

    /// Exactly one of `secret_file` and `secret_env`, read. The path is returned for files.
    fn scan_hook_secret(&mut self, t: Tbl<'_, '_>) -> Option<(Option<PathBuf>, Secret)> {
        let (key, path, secret) = self.secret_source(
            t,
            "no secret given; set secret_file or secret_env (make one with `scansync webhook-secret`)",
        )?;
        if secret.expose().len() < MIN_WEBHOOK_SECRET_LEN {
            self.warn(
                &t.field(key),
                &t.span_of(key),
                format!(
                    "the webhook secret is shorter than {MIN_WEBHOOK_SECRET_LEN} characters and easy to guess; make a new one with `scansync webhook-secret`"
                ),
            );
        }
        Some((path, secret))
    }

    /// Warns (naming `key`) when `path` is readable by group or others.
    fn warn_if_readable_by_others(&mut self, t: Tbl<'_, '_>, key: &str, path: &Path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    self.warn(
                        &t.field(key),
                        &t.span_of(key),
                        format!(
                            "{} is readable by group or others (mode {mode:04o}); run chmod 600 on it",
                            path.display()
                        ),
                    );
                }
            }
        }
        #[cfg(not(unix))]
        let _ = (t, key, path);
    }

    fn string_list(&mut self, t: Tbl<'_, '_>, key: &str) -> Vec<String> {
        let Some(v) = t.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(&t.field(key), v, "a list of strings");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => out.push(s.to_string()),
                _ => self.wrong_type(&format!("{}[{index}]", t.field(key)), item, "a string"),
            }
        }
        out
    }

    fn string_map(&mut self, t: Tbl<'_, '_>, key: &str) -> BTreeMap<String, String> {
        let Some(v) = t.get(key) else {
            return BTreeMap::new();
        };
        let DeValue::Table(table) = v.get_ref() else {
            self.wrong_type(&t.field(key), v, "a table of strings");
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for (k, item) in table.iter() {
            match item.get_ref() {
                DeValue::String(s) => {
                    out.insert(k.get_ref().to_string(), s.to_string());
                }
                _ => self.wrong_type(
                    &format!("{}.{}", t.field(key), k.get_ref()),
                    item,
                    "a string",
                ),
            }
        }
        out
    }

    fn schedule(&mut self, path: &str, v: &Val<'_>) -> Option<Schedule> {
        let table = match v.get_ref() {
            DeValue::String(word) if word == "now" => return Some(Schedule::Now),
            DeValue::String(word) => {
                self.error(path, Some(&v.span()), unknown_schedule_word(word));
                return None;
            }
            DeValue::Table(table) => table,
            _ => {
                self.wrong_type(
                    path,
                    v,
                    "\"now\" or a table ({ at }, { cron, timezone }, { every })",
                );
                return None;
            }
        };
        let span = v.span();
        let t = Tbl {
            path,
            table,
            span: &span,
        };
        self.unknown_keys(t, SCHEDULE_KEYS);
        // `at` may be a quoted string or a bare TOML date-time.
        let at = match t.get("at").map(|v| v.get_ref()) {
            Some(DeValue::Datetime(dt)) => Some(dt.to_string()),
            _ => self.string(t, "at"),
        };
        let cron = self.string(t, "cron");
        let timezone = self.string(t, "timezone");
        let every = self.string(t, "every");
        let before = self.errors.len();
        let given = |k: &str, s: &Option<String>| t.get(k).is_none() || s.is_some();
        if !(given("at", &at)
            && given("cron", &cron)
            && given("timezone", &timezone)
            && given("every", &every))
        {
            // A key of the wrong type was reported; do not add "give exactly one" noise.
            return None;
        }
        match Schedule::from_parts(
            at.as_deref(),
            cron.as_deref(),
            timezone.as_deref(),
            every.as_deref(),
        ) {
            Ok(s) => Some(s),
            Err(errors) => {
                for (key, msg) in errors {
                    if key.is_empty() {
                        self.error(path, Some(&span), msg);
                    } else {
                        let blame = t.get(key).map(|v| v.span()).unwrap_or_else(|| span.clone());
                        self.error(&t.field(key), Some(&blame), msg);
                    }
                }
                debug_assert!(self.errors.len() > before);
                None
            }
        }
    }
}

fn token_from_env(var: &str) -> Result<Secret, SecretProblem> {
    secret_from_env(var, "token", "token_file")
}

/// Reads a secret (`what`: "token", "secret") from environment variable `var`;
/// `alternative` is the key to suggest when the variable is unset.
fn secret_from_env(var: &str, what: &str, alternative: &str) -> Result<Secret, SecretProblem> {
    let looks_like_name = !var.is_empty()
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !var.starts_with(|c: char| c.is_ascii_digit());
    if !looks_like_name {
        // Not echoed: a value here is more likely a pasted secret than a variable name.
        return Err(SecretProblem::from(format!(
            "is not an environment variable name (letters, digits and _); it names the variable that holds the {what}, not the {what} itself"
        )));
    }
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim_end().to_string())),
        _ => Err(SecretProblem::unavailable(format!(
            "environment variable {var} is unset or empty; export it before starting scansync (or use {alternative})"
        ))),
    }
}

fn token_from_credential(name: &str) -> Result<Secret, SecretProblem> {
    if name.is_empty() || name.contains('/') {
        return Err(SecretProblem::from(format!(
            "\"{name}\" is not a credential name (no slashes; the name given to LoadCredential=)"
        )));
    }
    let dir = match std::env::var_os("CREDENTIALS_DIRECTORY") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            return Err(SecretProblem::unavailable(format!(
                "credential \"{name}\" needs $CREDENTIALS_DIRECTORY, which is unset; run under systemd with LoadCredential={name}:/path/to/token, or use token_file"
            )))
        }
    };
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        SecretProblem::unavailable(format!("cannot read credential {}: {e}", path.display()))
    })?;
    Ok(non_empty(
        text,
        &format!("credential {} is empty", path.display()),
    )?)
}

/// Why a secret was not read: its setting is wrong (always an error), or it is not there
/// for this process to read right now (see [`Secrets`]).
#[derive(Debug)]
struct SecretProblem {
    message: String,
    unavailable: bool,
}

impl SecretProblem {
    fn unavailable(message: String) -> SecretProblem {
        SecretProblem {
            message,
            unavailable: true,
        }
    }
}

impl From<String> for SecretProblem {
    fn from(message: String) -> SecretProblem {
        SecretProblem {
            message,
            unavailable: false,
        }
    }
}

impl fmt::Display for SecretProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Tokens end where their line does: files written with `echo` carry a trailing newline.
fn non_empty(text: String, empty_message: &str) -> Result<Secret, String> {
    let token = text.trim_end();
    if token.trim().is_empty() {
        Err(empty_message.to_string())
    } else {
        Ok(Secret::new(token.to_string()))
    }
}

fn article(type_name: &str) -> String {
    match type_name {
        "integer" | "array" => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

/// The known key closest to a misspelt one, if it is close enough to be a typo.
fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn durations_accept_each_unit_and_combinations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_reject_missing_units_negatives_and_junk() {
        for bad in [
            "",
            "90",
            "-5m",
            "6 hours",
            "1w",
            "h",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_duration("90").unwrap_err().contains("lacks a unit"));
    }

    #[test]
    fn durations_refuse_repeated_or_rising_units_and_explain_fractions() {
        assert_eq!(
            parse_duration("30s30s"),
            Err("\"30s30s\" gives \"s\" twice; give each unit once, e.g. \"1h30m\"".into())
        );
        assert_eq!(
            parse_duration("1m1h"),
            Err(
                "\"1m1h\" has \"h\" after the smaller unit \"m\"; write the units from \
                 largest to smallest, e.g. \"1h30m\""
                    .into()
            )
        );
        assert_eq!(
            parse_duration("1.5h"),
            Err(
                "\"1.5h\": fractions are not accepted; write the parts in smaller units, \
                 e.g. \"1h30m\" for 1.5h or \"1m30s\" for 1.5m"
                    .into()
            )
        );
        assert_eq!(parse_duration("2d3h4m5s"), Ok(Duration::from_secs(183_845)));
        assert_eq!(parse_duration("1h5s"), Ok(Duration::from_secs(3605)));
    }

    #[test]
    fn format_duration_inverts_parse_duration() {
        for s in ["30s", "15m", "6h", "1d", "1h30m", "2d3h4m5s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }

    #[test]
    fn next_after_for_now_at_and_every() {
        let now = utc("2026-11-23T10:00:00Z");
        assert_eq!(Schedule::Now.next_after(now), Some(now));
        let at = DateTime::parse_from_rfc3339("2026-12-01T02:00:00+03:00").unwrap();
        assert_eq!(
            Schedule::At(at).next_after(now),
            Some(utc("2026-11-30T23:00:00Z"))
        );
        assert_eq!(
            Schedule::At(at).next_after(utc("2026-12-02T00:00:00Z")),
            None
        );
        assert_eq!(
            Schedule::Every(Duration::from_secs(6 * 3600)).next_after(now),
            Some(utc("2026-11-23T16:00:00Z"))
        );
    }

    #[test]
    fn cron_next_after_keeps_local_wall_clock_across_dst() {
        let daily_9am = Schedule::Cron {
            expr: "0 0 9 * * *".to_string(),
            timezone: chrono_tz::America::New_York,
        };
        // 2026-03-08: New York moves from EST (UTC-5) to EDT (UTC-4).
        assert_eq!(
            daily_9am.next_after(utc("2026-03-07T15:00:00Z")),
            Some(utc("2026-03-08T13:00:00Z"))
        );
        assert_eq!(
            daily_9am.next_after(utc("2026-03-06T15:00:00Z")),
            Some(utc("2026-03-07T14:00:00Z"))
        );
        let istanbul = Schedule::Cron {
            expr: "0 0 2 * * *".to_string(),
            timezone: chrono_tz::Europe::Istanbul,
        };
        assert_eq!(
            istanbul.next_after(utc("2026-11-23T10:00:00Z")),
            Some(utc("2026-11-23T23:00:00Z"))
        );
    }

    #[test]
    fn cron_requires_seconds_and_ands_day_of_month_with_day_of_week() {
        assert!(parse_cron("0 2 * * *").is_err());
        assert!(parse_cron("0 0 2 * * *").is_ok());
        assert!(parse_cron("0 0 2 * * * 2027").is_ok());
        // First Monday of the month: day 1-7 AND Monday.
        let first_monday = Schedule::Cron {
            expr: "0 0 9 1-7 * MON".to_string(),
            timezone: chrono_tz::UTC,
        };
        assert_eq!(
            first_monday.next_after(utc("2026-11-23T00:00:00Z")),
            Some(Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap())
        );
    }

    #[test]
    fn schedule_deserializes_through_serde_too() {
        #[derive(Deserialize)]
        struct S {
            schedule: Schedule,
        }
        let s: S = toml::from_str("schedule = { every = \"1h\" }").unwrap();
        assert_eq!(s.schedule, Schedule::Every(Duration::from_secs(3600)));
        let s: S = toml::from_str("schedule = \"now\"").unwrap();
        assert_eq!(s.schedule, Schedule::Now);
        assert!(toml::from_str::<S>("schedule = \"daily\"").is_err());
    }

    #[test]
    fn from_toml_resolves_the_token_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "abc123\n").unwrap();
        let text = format!(
            "[store]\npath = \"db.sqlite\"\n[instances.s]\nvendor = \"saltsecurity\"\nregion = \"eu\"\ntoken_file = \"{}\"\n",
            token.display()
        );
        let loaded = Config::from_toml(&text, &dir.path().join("c.toml")).unwrap();
        let instance = &loaded.config.instances["s"];
        assert_eq!(instance.resolved_token.as_ref().unwrap().expose(), "abc123");
        assert_eq!(loaded.config.store.path, dir.path().join("db.sqlite"));
    }

    fn suppress_config(rules: &str) -> Result<Loaded, ConfigErrors> {
        let text = format!(
            "[store]\npath = \"db.sqlite\"\n[instances.s]\nvendor = \"saltsecurity\"\n\
             region = \"eu\"\ntoken = \"t\"\n[[scans]]\nname = \"api\"\ninstance = \"s\"\n\
             bind_to = \"a\"\nschedule = \"now\"\n{rules}"
        );
        Config::from_toml(&text, Path::new("/etc/scansync/c.toml"))
    }

    #[test]
    fn suppress_rules_are_read_in_order_with_a_default_name() {
        let loaded = suppress_config(
            "[[suppress]]\nname = \"tests\"\npath = \"**/test/**\"\nstate = \"false_positive\"\n\
             reason = \"fixtures\"\n[[suppress]]\nscans = [\"api\"]\nrule = \"BOLA\"\n\
             state = \"accepted\"\nreason = \"gateway checks\"\nuntil = \"2027-01-31\"\n",
        )
        .unwrap();
        let rules = &loaded.config.suppress;
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].name, "tests");
        assert_eq!(rules[1].name, "suppress[1]");
        assert_eq!(rules[1].state, SuppressState::Accepted);
        assert_eq!(rules[1].until_word().as_deref(), Some("2027-01-31"));
        assert!(rules[1].covers_scan("api") && rules[1].covers_scan("api@feature/x"));
        assert!(!rules[1].covers_scan("api2"));
        assert!(rules[1].active_at("2027-01-30T23:59:59.999Z"));
        assert!(!rules[1].active_at("2027-01-31T00:00:00.000Z"));
    }

    #[test]
    fn suppress_errors_name_their_field() {
        let errors = suppress_config(
            "[[suppress]]\npath = \"tests/**\"\nstate = \"false_positive\"\nreason = \"x\"\n\
             [[suppress]]\nstate = \"ignored\"\nreason = \"\"\nscans = [\"nope\"]\n\
             until = \"soon\"\ncolour = 1\n",
        )
        .unwrap_err()
        .errors
        .join("\n");
        for want in [
            "suppress[1]: matches every finding",
            "suppress[1].state: \"ignored\" is not a triage state",
            "suppress[1].reason: must not be empty",
            "suppress[1].scans[0]: no scan named \"nope\"",
            "suppress[1].until: \"soon\" is not a date",
            "suppress[1].colour: unknown key",
        ] {
            assert!(errors.contains(want), "{want} in:\n{errors}");
        }
        assert!(!errors.contains("suppress[0]"), "{errors}");
        let errors = suppress_config("[[suppress]]\ntitle = \"x\"\nstate = \"accepted\"\n")
            .unwrap_err()
            .errors
            .join("\n");
        assert!(
            errors.contains("suppress[0].reason: is required"),
            "{errors}"
        );
    }

    #[test]
    fn a_rule_matches_rule_path_and_title_together() {
        use crate::finding::{Finding, Location};
        let rule = SuppressRule {
            name: "r".into(),
            scans: Vec::new(),
            rule: Some("js/xss".into()),
            path: Some("**/test/**".into()),
            title: Some("XSS".into()),
            state: SuppressState::FalsePositive,
            reason: "x".into(),
            until: None,
        };
        let mut f = Finding {
            vendor_id: None,
            title: "Reflected xss in page".into(),
            severity: Severity::High,
            vendor_status: None,
            cwe: None,
            owasp: None,
            rule_id: Some("js/xss".into()),
            location: Location::Code {
                path: "web/test/page.js".into(),
                start_line: None,
                end_line: None,
            },
            description: None,
            remediation: None,
            vendor_url: None,
            vendor_first_seen: None,
            vendor_last_seen: None,
            raw: String::new(),
            verdict: None,
        };
        assert!(rule.matches(&f));
        f.rule_id = Some("js/sqli".into());
        assert!(!rule.matches(&f));
        f.rule_id = Some("js/xss".into());
        f.location = Location::Code {
            path: "web/page.js".into(),
            start_line: None,
            end_line: None,
        };
        assert!(!rule.matches(&f));
    }

    #[test]
    fn did_you_mean_suggests_only_close_keys() {
        assert_eq!(closest("organisation", INSTANCE_KEYS), Some("organization"));
        assert_eq!(closest("zzz", INSTANCE_KEYS), None);
    }
}
