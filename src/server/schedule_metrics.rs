//! `scansync_scan_interval_seconds`: how far apart the scheduled runs of each periodic scan
//! are, from the config in force. It lets an alert say "no success for twice its interval"
//! per scan (contrib/prometheus/scansync-rules.yml) without the operator copying each
//! schedule into the alert. Served by `/metrics` after the store-backed families.

use crate::config::{Config, Schedule};
use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode_registry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// How many of a cron schedule's next fire times are looked at: enough to see a weekend in
/// a weekday schedule or the long month in a monthly one.
const CRON_LOOKAHEAD: usize = 40;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScanLabels {
    scan: String,
}

/// The longest gap between two consecutive runs of `schedule` after `now`, in seconds:
/// `every`'s duration; for cron, the longest gap among its next [`CRON_LOOKAHEAD`] times (a
/// weekday schedule's weekend, so Monday's wait raises no alert). `None` for schedules that
/// run once (`now`, `at`) or no more.
pub fn interval_seconds(schedule: &Schedule, now: DateTime<Utc>) -> Option<f64> {
    match schedule {
        Schedule::Now | Schedule::At(_) => None,
        Schedule::Every(every) => Some(every.as_secs_f64()),
        Schedule::Cron { .. } => {
            let mut at = schedule.next_after(now)?;
            let mut longest: Option<f64> = None;
            for _ in 0..CRON_LOOKAHEAD {
                let Some(next) = schedule.next_after(at) else {
                    break;
                };
                let gap = (next - at).num_milliseconds() as f64 / 1000.0;
                longest = Some(longest.map_or(gap, |l: f64| l.max(gap)));
                at = next;
            }
            longest
        }
    }
}

/// The family in the Prometheus text format: one series per enabled periodic scan.
pub fn render(config: &Config, now: DateTime<Utc>) -> String {
    let family: Family<ScanLabels, Gauge<f64, AtomicU64>> = Family::default();
    for scan in config.scans.iter().filter(|s| s.enabled) {
        if let Some(seconds) = interval_seconds(&scan.schedule, now) {
            family
                .get_or_create(&ScanLabels {
                    scan: scan.name.clone(),
                })
                .set(seconds);
        }
    }
    let mut registry = Registry::default();
    registry.register(
        "scansync_scan_interval_seconds",
        "The longest time between two scheduled runs of each periodic scan (every: its duration; cron: the longest gap among its next 40 times)",
        family,
    );
    let mut text = String::new();
    encode_registry(&mut text, &registry).expect("writing to a String");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cron(expr: &str) -> Schedule {
        Schedule::Cron {
            expr: expr.to_string(),
            timezone: chrono_tz::UTC,
        }
    }

    #[test]
    fn every_is_its_duration_and_one_shot_schedules_have_none() {
        let now = at("2026-12-01T12:00:00Z");
        let six_hours = Schedule::Every(Duration::from_secs(6 * 3600));
        assert_eq!(interval_seconds(&six_hours, now), Some(21600.0));
        assert_eq!(interval_seconds(&Schedule::Now, now), None);
        let once = Schedule::At(DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap());
        assert_eq!(interval_seconds(&once, now), None);
    }

    #[test]
    fn a_weekday_cron_counts_its_weekend_gap() {
        let now = at("2026-12-01T12:00:00Z"); // a Tuesday
        assert_eq!(interval_seconds(&cron("0 0 2 * * *"), now), Some(86400.0));
        assert_eq!(
            interval_seconds(&cron("0 0 9 * * MON-FRI"), now),
            Some(3.0 * 86400.0)
        );
    }

    #[test]
    fn the_text_has_one_series_per_periodic_scan() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[store]\npath = \"s.db\"\n\
            [instances.ct]\nvendor = \"codethreat\"\nurl = \"https://ct.example\"\n\
            organization = \"o\"\ntoken = \"t\"\n\
            [[scans]]\nname = \"nightly\"\ninstance = \"ct\"\nbind_to = \"p\"\n\
            schedule = { cron = \"0 0 2 * * *\" }\n\
            [[scans]]\nname = \"once\"\ninstance = \"ct\"\nbind_to = \"p\"\nschedule = \"now\"\n\
            [[scans]]\nname = \"off\"\ninstance = \"ct\"\nbind_to = \"p\"\nenabled = false\n\
            schedule = { every = \"1h\" }\n";
        let config = Config::from_toml(text, &dir.path().join("c.toml"), crate::vendors::REGISTRY)
            .unwrap()
            .config;
        let out = render(&config, at("2026-12-01T12:00:00Z"));
        assert!(
            out.contains("# TYPE scansync_scan_interval_seconds gauge\n"),
            "{out}"
        );
        assert!(
            out.contains("scansync_scan_interval_seconds{scan=\"nightly\"} 86400.0\n"),
            "{out}"
        );
        assert!(!out.contains("once") && !out.contains("\"off\""), "{out}");
    }
}
