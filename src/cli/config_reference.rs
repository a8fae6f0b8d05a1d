//! The reference of every config key, rendered as the `scansync.toml(5)` man page.
//!
//! The checker in [`crate::config`] has the one list of the keys it accepts
//! ([`crate::config::Config::known_keys`]); this table is the documentation of the same keys,
//! with types and defaults. `tests/man_pages.rs` keeps the two equal: it fails when either
//! side names a key the other lacks.
//!
//! Key paths are dotted from the top of the file: `NAME` stands for the name of a table in
//! a map (`[instances.NAME]`, `[webhooks.NAME]`), `[]` for an entry of an array of tables
//! (`[[scans]]`, `[[suppress]]`).

use roff::{bold, italic, roman, Roff};

/// One key of the config file.
#[derive(Debug, Clone, Copy)]
pub struct ConfigKey {
    /// The dotted path: `store.retention.runs`, `instances.NAME.token_file`,
    /// `scans[].schedule.every`.
    pub path: &'static str,
    /// What the value is: "string", "duration", "table", …
    pub kind: &'static str,
    /// The value when the key is left out, or "required".
    pub default: &'static str,
    /// What it does.
    pub about: &'static str,
}

const fn key(
    path: &'static str,
    kind: &'static str,
    default: &'static str,
    about: &'static str,
) -> ConfigKey {
    ConfigKey {
        path,
        kind,
        default,
        about,
    }
}

/// Every key the config checker accepts, in the order the page shows them.
pub const CONFIG_KEYS: &[ConfigKey] = &[
    // [store]
    key("store", "table", "required", "Where findings are kept."),
    key("store.path", "path", "path or url",
        "The SQLite file. It and its parent folder are created if missing. Relative paths are taken from the config file's folder. Moving it needs a restart. Give path or url, not both."),
    key("store.url", "string", "path or url",
        "A PostgreSQL database instead of a SQLite file, for several daemons sharing the work: postgres://USER@HOST:5432/DB?sslmode=verify-full. Never with a password in it. sslmode require, verify-ca and verify-full (the default) all verify the server's certificate and name; disable is for a local socket or a trusted link; allow and prefer (which fall back to clear text, password and all) are refused. scansync store copy moves a SQLite store there."),
    key("store.password_file", "path", "none",
        "The PostgreSQL password, read from this file (%d/NAME: the systemd credentials folder)."),
    key("store.password_env", "string", "none",
        "The environment variable that holds the PostgreSQL password."),
    key("store.password_credential", "string", "none",
        "The systemd credential (LoadCredential= name) that holds the PostgreSQL password."),
    key("store.ca_file", "path", "the system's roots",
        "PEM bundle of the CA that signed the PostgreSQL server's certificate."),
    key("store.retention", "table", "the defaults below",
        "How long what only piles up is kept. The daemon prunes five minutes after start and hourly; scansync store prune prunes now. A finding the vendor still reports is never pruned, nor the newest run of a scan."),
    key("store.retention.runs", "duration", "180d",
        "Ended runs nothing names any more, and fixed findings last seen that long ago."),
    key("store.retention.events", "duration", "180d", "Finding history events."),
    key("store.retention.notifications", "duration", "30d",
        "Delivered or given-up webhook notifications."),
    key("store.retention.webhook_deliveries", "duration", "24h",
        "The replay guard's memory of webhook delivery ids."),
    key("store.retention.branch_scopes", "duration", "30d",
        "A NAME@BRANCH scope without a run for that long goes, with its findings."),
    // [daemon]
    key("daemon", "table", "the defaults below", "Limits of the daemon and of scansync sync."),
    key("daemon.concurrency", "integer", "4",
        "Sync runs in flight at once across all scans, per process (at least 1)."),
    key("daemon.per_instance_concurrency", "integer", "2",
        "Sync runs in flight at once against one instance (at least 1)."),
    key("daemon.shutdown_timeout", "duration", "30s",
        "On SIGTERM, how long runs in flight get to commit their current page. Keep the unit's TimeoutStopSec= above it."),
    key("daemon.jitter", "duration", "0s",
        "Random delay of up to this much before each periodic run."),
    key("daemon.poll_interval", "duration", "5s",
        "How often the status of a started vendor scan is polled (more than zero)."),
    key("daemon.fix_guard", "number", "0.5",
        "When one complete run would mark more than this share of a scan's findings fixed (above 20 findings), or all of them, they become missing instead and are fixed only if the next complete run still lacks them. 1.0 turns the guard off."),
    key("daemon.node_name", "string", "the host name",
        "This daemon's name among those sharing a PostgreSQL store: the node label of every /metrics series and node in /readyz. Letters, digits, -, _ and ., at most 64."),
    // [server]
    key("server", "table", "no listener",
        "The HTTP listener inside scansync run: POST /hooks/SCAN, GET /healthz, /readyz and /metrics. Changing it needs a restart."),
    key("server.listen", "string", "required",
        "An IP address and port, such as 127.0.0.1:8787 (host names are not resolved). Outside loopback, metrics_token_file or behind_proxy is required."),
    key("server.tls_cert_file", "path", "none",
        "A PEM certificate chain for HTTPS; with tls_key_file."),
    key("server.tls_key_file", "path", "none", "The private key of tls_cert_file."),
    key("server.behind_proxy", "boolean", "false",
        "A TLS-terminating reverse proxy is in front: no warning for a plain listener outside loopback."),
    key("server.metrics_token_file", "path", "none",
        "A file holding a bearer token that GET /metrics then requires (%d/NAME: a systemd credential)."),
    key("server.max_connections", "integer", "128",
        "Connections served at once; more are closed as they arrive, logged at most once per 10 seconds."),
    // [instances.NAME]
    key("instances", "table of tables", "required",
        "Vendor instances, one [instances.NAME] table per tenant; scans name them."),
    key("instances.NAME.vendor", "string", "required", "codethreat or saltsecurity."),
    key("instances.NAME.url", "string", "required for CodeThreat",
        "Base URL; may carry a path prefix. Salt Security: instead of region."),
    key("instances.NAME.region", "string", "none",
        "Salt Security only: us or eu (or give url, not both)."),
    key("instances.NAME.organization", "string", "required for CodeThreat",
        "CodeThreat only: the organization name, exactly as CodeThreat shows it."),
    key("instances.NAME.token_file", "path", "none",
        "A file holding the token (trailing newline ignored); a leading %d/ means the systemd credentials folder. Exactly one of token_file, token_env, credential, token."),
    key("instances.NAME.token_env", "string", "none",
        "The name of an environment variable holding the token."),
    key("instances.NAME.credential", "string", "none",
        "A systemd credential name, read from $CREDENTIALS_DIRECTORY/NAME. The packaged unit loads each file FILE of /etc/scansync/credentials as scansync_FILE; where $CREDENTIALS_DIRECTORY is unset (test-connection or check-config run by hand), scansync_FILE is read from that file itself."),
    key("instances.NAME.token", "string", "none",
        "The token itself, inline: allowed, but warned about at every start."),
    key("instances.NAME.insecure", "boolean", "false",
        "Skip TLS certificate verification (warned about loudly). For a private CA use ca_file."),
    key("instances.NAME.ca_file", "path", "none",
        "A PEM file of extra root certificates (self-hosted instances)."),
    key("instances.NAME.proxy", "string", "none",
        "An http(s) proxy URL, such as http://proxy.internal:3128."),
    key("instances.NAME.timeout", "duration", "60s", "Per-request timeout."),
    // [[scans]]
    key("scans", "array of tables", "none", "One [[scans]] table per thing to keep in sync."),
    key("scans[].name", "string", "required",
        "Unique name, used in logs, the store and the CLI; no @ (runs on another branch are stored as NAME@BRANCH)."),
    key("scans[].instance", "string", "required", "An [instances.NAME] table."),
    key("scans[].bind_to", "string", "required",
        "The CodeThreat project or Salt Security API asset to read (scansync projects INSTANCE lists them)."),
    key("scans[].branch", "string", "the project's default branch", "Branch to scan (CodeThreat)."),
    key("scans[].environment", "string", "none",
        "Environment label passed to the vendor, such as production."),
    key("scans[].tags", "array of strings", "[]", "Strings attached to the scan."),
    key("scans[].metadata", "table of strings", "{}", "Values attached to the scan request."),
    key("scans[].min_severity", "string", "every severity",
        "Findings below this (info, low, medium, high, critical) are not notified or counted for thresholds; they are still stored and tracked."),
    key("scans[].fix_guard", "number", "daemon.fix_guard", "Overrides daemon.fix_guard for this scan."),
    key("scans[].enabled", "boolean", "true", "false keeps the scan configured but never run."),
    key("scans[].timeout", "duration", "2h",
        "A vendor scan unfinished after this long is marked timed out."),
    key("scans[].schedule", "string or table", "required",
        "When the scan runs: \"now\" (once at start-up, not again once it succeeded), or a table with one of at, every, cron."),
    key("scans[].schedule.at", "date-time", "none",
        "Once, at this RFC 3339 instant (offset required); an instant missed while the daemon was down runs at start-up."),
    key("scans[].schedule.every", "duration", "none",
        "Periodically; a scan that never ran, or last started an interval ago or more, runs at start-up."),
    key("scans[].schedule.cron", "string", "none",
        "Six fields, seconds first (sec min hour day-of-month month day-of-week), an optional seventh for the year; when both day fields are restricted, both must match."),
    key("scans[].schedule.timezone", "string", "UTC",
        "The IANA time zone of cron: 02:00 stays 02:00 local time across daylight-saving changes."),
    key("scans[].webhook", "table", "none",
        "Pushes that start this scan at once, at https://HOST:PORT/hooks/NAME (needs [server])."),
    key("scans[].webhook.platform", "string", "required", "github, gitlab or bitbucket."),
    key("scans[].webhook.secret_env", "string", "none",
        "An environment variable holding the shared secret; exactly one of secret_env, secret_file (scansync webhook-secret makes one)."),
    key("scans[].webhook.secret_file", "path", "none", "A file holding the shared secret."),
    key("scans[].webhook.branches", "array of strings", "required",
        "Branch globs that start the scan: * within one segment, ** across /, ? one character."),
    // [webhooks.NAME]
    key("webhooks", "table of tables", "none",
        "Signed notifications about runs (Standard Webhooks), one [webhooks.NAME] table per receiver."),
    key("webhooks.NAME.url", "string", "required", "Where to POST (https strongly advised)."),
    key("webhooks.NAME.secret_env", "string", "none",
        "An environment variable holding the signing secret; exactly one of secret_env, secret_file. A whsec_BASE64 secret is decoded into the key; at least 24 bytes of key."),
    key("webhooks.NAME.secret_file", "path", "none",
        "A file holding the signing secret (%d/NAME: a systemd credential)."),
    key("webhooks.NAME.events", "array of strings", "[\"findings.new\"]",
        "Any of findings.new, findings.fixed, findings.reopened, run.failed."),
    key("webhooks.NAME.min_severity", "string", "every severity",
        "Only findings of this severity or worse; a findings.* notification is sent only when one passes."),
    key("webhooks.NAME.scans", "array of strings", "every scan", "Only runs of these scans."),
    key("webhooks.NAME.timeout", "duration", "10s", "Per delivery attempt."),
    // [[suppress]]
    key("suppress", "array of tables", "none",
        "Suppression rules: findings a team never wants to see as open, triaged as they are stored. The first matching rule applies; a person's triage wins over a rule."),
    key("suppress[].name", "string", "suppress[N]",
        "Names the rule in events, exports (triage_by = rule:NAME) and check-config."),
    key("suppress[].scans", "array of strings", "every scan",
        "Only these scans (and their branch runs)."),
    key("suppress[].rule", "string", "none", "The vendor's rule id, exactly."),
    key("suppress[].path", "string", "none",
        "A glob over the file or API path: * within a folder, ** across folders, ? one character."),
    key("suppress[].title", "string", "none",
        "A piece of the title, any case. At least one of rule, path, title; a finding must match all that are given."),
    key("suppress[].state", "string", "required", "false_positive or accepted."),
    key("suppress[].reason", "string", "required",
        "Why: shown with every finding the rule triages, and in SARIF suppressions."),
    key("suppress[].until", "date", "none",
        "YYYY-MM-DD: the rule stops applying that day (UTC) and its findings open again."),
];

/// The sections of the page: a table's own key first, then its keys.
const SECTIONS: &[(&str, &str)] = &[
    ("store", "[store]"),
    ("daemon", "[daemon]"),
    ("server", "[server]"),
    ("instances", "[instances.NAME]"),
    ("scans", "[[scans]]"),
    ("webhooks", "[webhooks.NAME]"),
    ("suppress", "[[suppress]]"),
];

/// The first segment of a key path: `scans[].schedule.at` → `scans`.
fn top_level(path: &str) -> &str {
    path.split(['.', '[']).next().unwrap_or(path)
}

/// `scansync.toml(5)` as roff, `version` on its title line.
pub fn render_man_page(version: &str) -> String {
    let source = format!("scansync {version}");
    let mut page = Roff::new();
    page.control(
        "TH",
        ["SCANSYNC.TOML", "5", "", source.as_str(), "File Formats"],
    )
    .control("SH", ["NAME"])
    .text([roman("scansync.toml - the scansync configuration file")])
    .control("SH", ["SYNOPSIS"])
    .text([bold("/etc/scansync/config.toml")])
    .control("SH", ["DESCRIPTION"])
    .text([
        roman(
            "scansync reads its configuration from --config PATH, else $SCANSYNC_CONFIG, else \
             /etc/scansync/config.toml. The file is TOML. Unknown keys are errors, so a typo \
             never silently disables a setting; ",
        ),
        bold("scansync check-config"),
        roman(" lists every problem at once, each with its field path and line, and exits 78."),
    ])
    .control("PP", [])
    .text([roman(
        "Durations are whole numbers with units from largest to smallest, each once: \
             30s, 15m, 6h, 1d, 1h30m. Relative paths (store.path, token_file, ca_file) are \
             taken from the config file's folder. Key paths below are dotted from the top of \
             the file; NAME is the name of a table in a map, [] an entry of an array of tables.",
    )])
    .control("PP", [])
    .text([
        roman("A complete example with comments: "),
        italic("/usr/share/doc/scansync/examples/config.example.toml"),
        roman("."),
    ]);
    for (top, heading) in SECTIONS {
        page.control("SH", [*heading]);
        for k in CONFIG_KEYS.iter().filter(|k| top_level(k.path) == *top) {
            page.control("TP", [])
                .text([
                    bold(k.path),
                    roman(format!(" ({}; default: {})", k.kind, k.default)),
                ])
                .text([roman(k.about)]);
        }
    }
    page.control("SH", ["FILES"])
        .control("TP", [])
        .text([bold("/etc/scansync/config.toml")])
        .text([roman(
            "The configuration file (a conffile of the Debian package).",
        )])
        .control("TP", [])
        .text([bold("/var/lib/scansync/")])
        .text([roman(
            "The state directory of the systemd unit, where the store belongs.",
        )])
        .control("SH", ["SEE ALSO"])
        .text([
            bold("scansync"),
            roman("(1), "),
            bold("scansync-check-config"),
            roman("(1), "),
            bold("systemd.exec"),
            roman("(5)"),
        ]);
    page.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_belongs_to_a_section_and_appears_once() {
        let mut seen = std::collections::BTreeSet::new();
        for k in CONFIG_KEYS {
            assert!(
                SECTIONS.iter().any(|(top, _)| top_level(k.path) == *top),
                "{} is in no section",
                k.path
            );
            assert!(seen.insert(k.path), "{} is listed twice", k.path);
        }
    }

    #[test]
    fn the_page_names_every_key_in_bold() {
        let page = render_man_page("0.0.0");
        for k in CONFIG_KEYS {
            // roff escapes '-' only; key paths have none.
            let bold = format!("\\fB{}\\fR", k.path);
            assert!(page.contains(&bold), "{} is missing from the page", k.path);
        }
    }
}
