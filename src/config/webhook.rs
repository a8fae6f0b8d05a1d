//! What each `[webhooks.NAME]` wants: the event words a config names and the routing rules
//! ([`Route`]) the store applies when a run ends. Config, not delivery: the store reads them
//! and knows nothing else of webhooks.

use super::Config;
use crate::finding::Severity;
use std::fmt;

/// What a notification is about; the word is the payload's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// Findings seen for the first time in a run.
    FindingsNew,
    /// Findings a complete, successful run no longer saw.
    FindingsFixed,
    /// Findings that were fixed and are back.
    FindingsReopened,
    /// A run ended `failed` or `timed_out` (an `interrupted` run is scansync being stopped,
    /// and is resumed at the next start, so it is not a failure to report).
    RunFailed,
    /// `scansync webhook test`: never written to the outbox, never routed.
    Ping,
}

impl EventType {
    /// The events a `[webhooks.NAME] events` list may name (everything but `ping`).
    pub const ROUTABLE: [EventType; 4] = [
        EventType::FindingsNew,
        EventType::FindingsFixed,
        EventType::FindingsReopened,
        EventType::RunFailed,
    ];

    /// The word in the config, the payload's `type` and the outbox's `event_type` column.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::FindingsNew => "findings.new",
            EventType::FindingsFixed => "findings.fixed",
            EventType::FindingsReopened => "findings.reopened",
            EventType::RunFailed => "run.failed",
            EventType::Ping => "ping",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventType {
    type Err = String;
    /// Parses the words a config may use; `ping` is not one of them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ROUTABLE
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = EventType::ROUTABLE.iter().map(|e| e.as_str()).collect();
                format!(
                    "\"{s}\" is not a webhook event (one of {})",
                    known.join(", ")
                )
            })
    }
}

impl<'de> serde::Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = String::deserialize(d)?;
        word.parse().map_err(serde::de::Error::custom)
    }
}

/// Which notifications one webhook gets: the part of `[webhooks.NAME]` the store needs to
/// write outbox rows. No URL and no secret: the store never sees either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The `NAME` of `[webhooks.NAME]`.
    pub name: String,
    pub events: Vec<EventType>,
    /// Only findings of this severity or worse; `None` = every severity. Does not apply to
    /// `run.failed`.
    pub min_severity: Option<Severity>,
    /// Only runs of these scans (config names); empty = every scan.
    pub scans: Vec<String>,
}

impl Route {
    pub fn wants(&self, event: EventType) -> bool {
        self.events.contains(&event)
    }

    /// Whether a run of store scan `store_scan` is one of this route's scans. A run with an
    /// overridden branch is stored as `name@branch` (see [`crate::sync::scope_for`]); it
    /// belongs to the configured scan `name`.
    pub fn wants_scan(&self, store_scan: &str, branch: Option<&str>) -> bool {
        if self.scans.is_empty() {
            return true;
        }
        let base = branch
            .and_then(|b| store_scan.strip_suffix(&format!("@{b}")))
            .unwrap_or(store_scan);
        self.scans.iter().any(|s| s == store_scan || s == base)
    }

    /// Whether a finding of `severity` is reported to this route.
    pub fn wants_severity(&self, severity: Severity) -> bool {
        self.min_severity.is_none_or(|min| severity >= min)
    }
}

impl Config {
    /// The routes of a config, one per `[webhooks.NAME]`, for
    /// `store::Store::set_webhook_routes`.
    pub fn webhook_routes(&self) -> Vec<Route> {
        self.webhooks
            .iter()
            .map(|(name, w)| Route {
                name: name.clone(),
                events: w.events.clone(),
                min_severity: w.min_severity,
                scans: w.scans.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(scans: &[&str], min: Option<Severity>) -> Route {
        Route {
            name: "r".into(),
            events: vec![EventType::FindingsNew],
            min_severity: min,
            scans: scans.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn event_words_round_trip_and_ping_is_not_routable() {
        for e in EventType::ROUTABLE {
            assert_eq!(e.as_str().parse::<EventType>(), Ok(e));
        }
        let err = "ping".parse::<EventType>().unwrap_err();
        assert!(err.contains("findings.new, findings.fixed"), "{err}");
    }

    #[test]
    fn an_empty_scan_list_means_every_scan() {
        assert!(route(&[], None).wants_scan("anything", None));
    }

    #[test]
    fn a_branch_run_belongs_to_its_configured_scan() {
        let r = route(&["web"], None);
        assert!(r.wants_scan("web", Some("main")));
        assert!(r.wants_scan("web@feature-x", Some("feature-x")));
        assert!(!r.wants_scan("web@feature-x", Some("other")));
        assert!(!r.wants_scan("api", None));
    }

    #[test]
    fn min_severity_means_this_or_worse() {
        let r = route(&[], Some(Severity::High));
        assert!(r.wants_severity(Severity::Critical));
        assert!(r.wants_severity(Severity::High));
        assert!(!r.wants_severity(Severity::Medium));
        assert!(route(&[], None).wants_severity(Severity::Info));
    }
}
