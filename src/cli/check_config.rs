//! `scansync check-config`: validates the config and prints what the daemon would do with
//! it. Errors go back to `cli::main`, which prints one `error:` line each and exits 78.

use super::Global;
use crate::config::{format_duration, Config, Schedule, Secrets};
use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt::Write as _;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
A secret that cannot be read here (an unset variable, a missing token file or systemd
credential) is a warning, not an error: the service's environment is not this shell's.
`run`, `sync` and `scan` still refuse to start without it; --strict makes it an error here
too (exit 78).")]
pub struct Args {
    /// Treat a secret that cannot be read now as an error (exit 78), as `run` does
    #[arg(long)]
    pub strict: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let path = Config::resolve_path(global.config.as_deref());
    let secrets = if args.strict {
        Secrets::Required
    } else {
        Secrets::MayBeAbsent
    };
    let loaded = Config::load_checking(&path, secrets, crate::vendors::REGISTRY)?;
    // Printed here rather than through tracing, so they show whatever the log level and
    // in the same `word: message` shape as the errors.
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", summary(&path, &loaded.config, Utc::now()));
    // The store is part of what must work: a PostgreSQL server that refuses the login is
    // found here, not at the daemon's start.
    let location = loaded.config.store.location.clone();
    let probe = tokio::task::spawn_blocking(move || crate::store::Store::probe(&location)).await?;
    match probe {
        Ok(state) => println!("store check: {state}"),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(super::test_connection::EXIT_OTHER);
        }
    }
    if !loaded.config.suppress.is_empty() {
        let config = loaded.config.clone();
        // SQLite reads block; keep them off the async workers.
        let text =
            tokio::task::spawn_blocking(move || suppress_summary(&config, Utc::now())).await?;
        print!("{text}");
    }
    Ok(0)
}

/// The `[[suppress]]` rules and how many current findings (those not fixed) in the store
/// each would match now, so a rule that matches nothing, or everything, shows before it is
/// deployed. The store is opened read-only; without one there is nothing to count.
pub fn suppress_summary(config: &Config, now: DateTime<Utc>) -> String {
    use crate::store::{FindingFilter, FindingState, Store};
    let rules = &config.suppress;
    let stamp = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut counts = vec![0u64; rules.len()];
    let store_note = match Store::open_read_only_at(&config.store.location) {
        Ok(store) => {
            let filter = FindingFilter {
                states: FindingState::ALL
                    .into_iter()
                    .filter(|s| *s != FindingState::Fixed)
                    .collect(),
                ..FindingFilter::default()
            };
            let counted = store.for_each_finding(&filter, |row| {
                for (rule, n) in rules.iter().zip(counts.iter_mut()) {
                    if rule.covers_scan(&row.scan) && rule.matches(&row.finding) {
                        *n += 1;
                    }
                }
                Ok::<_, crate::store::StoreError>(())
            });
            match counted {
                Ok(()) => None,
                Err(e) => Some(format!("cannot count matches: {e}")),
            }
        }
        Err(crate::store::StoreError::Missing(_)) => Some(format!(
            "no store yet at {}, so no findings to match",
            config.store.location
        )),
        Err(e) => Some(format!("cannot count matches: {e}")),
    };
    let mut out = String::new();
    let _ = writeln!(out, "suppression rules ({}):", rules.len());
    let rows: Vec<[String; 4]> = rules
        .iter()
        .zip(&counts)
        .map(|(rule, n)| {
            let mut what = Vec::new();
            if let Some(r) = &rule.rule {
                what.push(format!("rule {r}"));
            }
            if let Some(p) = &rule.path {
                what.push(format!("path {p}"));
            }
            if let Some(t) = &rule.title {
                what.push(format!("title ~ \"{t}\""));
            }
            if !rule.scans.is_empty() {
                what.push(format!("in {}", rule.scans.join(", ")));
            }
            let mut state = rule.state.as_str().to_string();
            if let Some(until) = rule.until_word() {
                state.push_str(&format!(" until {until}"));
            }
            let matches = if !rule.active_at(&stamp) {
                "ended (its until has passed)".to_string()
            } else if store_note.is_some() {
                "-".to_string()
            } else {
                format!("matches {n} current finding(s)")
            };
            [rule.name.clone(), state, what.join("  "), matches]
        })
        .collect();
    write_rows(&mut out, &rows);
    if let Some(note) = store_note {
        let _ = writeln!(out, "  ({note})");
    }
    out
}

/// The summary `check-config` prints. Never contains a token: instances are described
/// through [`crate::config::InstanceConfig::token_source`].
pub fn summary(path: &std::path::Path, config: &Config, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "config {}: ok", path.display());
    let _ = writeln!(out, "store: {}", config.store.location);
    let d = &config.daemon;
    let _ = writeln!(
        out,
        "daemon: concurrency {} ({} per instance), poll every {}, jitter {}, shutdown timeout {}",
        d.concurrency,
        d.per_instance_concurrency,
        format_duration(d.poll_interval),
        format_duration(d.jitter),
        format_duration(d.shutdown_timeout)
    );

    match &config.server {
        Some(server) => {
            let mut line = format!(
                "server: {}://{}",
                if server.tls_cert_file.is_some() {
                    "https"
                } else {
                    "http"
                },
                server.listen
            );
            if server.behind_proxy {
                line.push_str(", behind a proxy");
            }
            if let Some(f) = &server.metrics_token_file {
                let _ = write!(line, ", /metrics needs the token from {}", f.display());
            }
            let _ = writeln!(out, "{line}");
        }
        None => {
            let _ = writeln!(out, "server: none (no [server] table)");
        }
    }

    let _ = writeln!(out, "instances ({}):", config.instances.len());
    let rows: Vec<[String; 4]> = config
        .instances
        .iter()
        .map(|(name, i)| {
            let place = match (&i.url, &i.region) {
                (Some(url), _) => url.clone(),
                (None, Some(region)) => format!("region {region}"),
                (None, None) => String::new(),
            };
            let mut extra = Vec::new();
            if let Some(org) = &i.organization {
                extra.push(format!("org \"{org}\""));
            }
            extra.push(i.token_source());
            if i.insecure {
                extra.push("TLS NOT VERIFIED".to_string());
            }
            if let Some(ca) = &i.ca_file {
                extra.push(format!("ca_file {}", ca.display()));
            }
            if i.proxy.is_some() {
                // The proxy URL may carry credentials, so only its presence is shown.
                extra.push("via proxy".to_string());
            }
            if let Some(t) = i.timeout {
                extra.push(format!("timeout {}", format_duration(t)));
            }
            [name.clone(), i.vendor.clone(), place, extra.join("  ")]
        })
        .collect();
    write_rows(&mut out, &rows);

    let _ = writeln!(out, "scans ({}):", config.scans.len());
    let rows: Vec<[String; 4]> = config
        .scans
        .iter()
        .map(|s| {
            let mut target = format!("{} -> {}", s.instance, s.bind_to);
            if let Some(b) = &s.branch {
                let _ = write!(target, " (branch {b})");
            }
            if let Some(e) = &s.environment {
                let _ = write!(target, " (environment {e})");
            }
            if let Some(w) = &s.webhook {
                let _ = write!(
                    target,
                    " (webhook {} {})",
                    w.platform,
                    w.branches.join(", ")
                );
            }
            let next = if !s.enabled {
                "disabled".to_string()
            } else {
                match s.schedule.next_after(now) {
                    Some(t) if s.schedule == Schedule::Now => {
                        format!("next {} (at start-up)", rfc3339(t))
                    }
                    Some(t) => format!("next {}", rfc3339(t)),
                    None => "never (the time is past)".to_string(),
                }
            };
            [s.name.clone(), target, s.schedule.to_string(), next]
        })
        .collect();
    write_rows(&mut out, &rows);

    if !config.webhooks.is_empty() {
        let _ = writeln!(out, "webhooks ({}):", config.webhooks.len());
        let rows: Vec<[String; 4]> = config
            .webhooks
            .iter()
            .map(|(name, w)| {
                // Only scheme, host and port: webhook URLs often carry a token in the path.
                let url = reqwest::Url::parse(&w.url)
                    .map(|u| crate::webhooks::delivery::shown_url(&u))
                    .unwrap_or_default();
                let events: Vec<&str> = w.events.iter().map(|e| e.as_str()).collect();
                let mut filters = vec![w.secret_source()];
                if let Some(min) = w.min_severity {
                    filters.push(format!("{min} or worse"));
                }
                if !w.scans.is_empty() {
                    filters.push(format!("scans {}", w.scans.join(", ")));
                }
                filters.push(format!("timeout {}", format_duration(w.timeout)));
                [name.clone(), url, events.join(", "), filters.join("  ")]
            })
            .collect();
        write_rows(&mut out, &rows);
    }
    out
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Rows as aligned columns, indented under their heading.
fn write_rows(out: &mut String, rows: &[[String; 4]]) {
    let mut widths = [0usize; 4];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::from(" ");
        for (i, cell) in row.iter().enumerate() {
            line.push(' ');
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$} ", width = widths[i]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}
