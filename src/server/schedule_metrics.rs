//! The families of `/metrics` that come from the config in force, for an alert that says "no
//! success for twice its interval" per scan (contrib/prometheus/scansync-rules.yml) without
//! the operator copying each schedule into the alert:
//! - `scansync_scan_interval_seconds`: the longest time between two scheduled runs of each
//!   periodic scan, `[daemon] jitter` included (a run starts up to that long after its time,
//!   so two runs can be the schedule's gap plus the jitter apart);
//! - `scansync_scan_created_timestamp_seconds`: since when that scan exists, which is where its
//!   lack of success counts from when it never succeeded (there is no last success to count
//!   from then).
//!
//! Served by `/metrics` after the store-backed families, and worked out once per config
//! ([`ScheduleCache`]): a cron schedule's longest gap takes thousands of fire-time look-ups.

use crate::config::{Config, Schedule};
use chrono::{DateTime, TimeDelta, Utc};
use prometheus_client::encoding::text::encode_registry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// How far past its next fire time a cron schedule's gaps are looked for: a year and a month,
/// so a yearly or monthly schedule's gap is seen, as is a weekday schedule's weekend.
const CRON_SPAN: TimeDelta = TimeDelta::days(400);

/// Gaps at least this long are all measured, however dense the fire times around them (see
/// [`longest_gap`]). Shorter gaps repeat in every hour (cron fields combine independently), so
/// the fire times of the first two hours, all visited, show them.
const PROBE_STEP: TimeDelta = TimeDelta::hours(1);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScanLabels {
    scan: String,
}

/// The longest gap between two consecutive runs of `schedule` after `now`, in seconds:
/// `every`'s duration; for cron, the longest gap over [`CRON_SPAN`] (an office-hours
/// schedule's weekend, a monthly one's longest month), so a healthy scan is never taken for a
/// stale one while it waits for its next run. `None` for schedules that run once (`now`,
/// `at`) or no more.
pub fn interval_seconds(schedule: &Schedule, now: DateTime<Utc>) -> Option<f64> {
    match schedule {
        Schedule::Now | Schedule::At(_) => None,
        Schedule::Every(every) => Some(every.as_secs_f64()),
        Schedule::Cron { expr, timezone } => {
            // Parsed once here rather than per look-up through `Schedule::next_after`; matched
            // on the wall clock of `timezone` as the daemon does.
            let cron = crate::config::parse_cron(expr).ok()?;
            let next = |t: DateTime<Utc>| {
                cron.find_next_occurrence(&t.with_timezone(timezone), false)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            };
            let latest = |t: DateTime<Utc>| {
                cron.find_previous_occurrence(&t.with_timezone(timezone), true)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            };
            longest_gap(next, latest, now)
        }
    }
}

/// The longest gap between consecutive fire times from the first after `now` to [`CRON_SPAN`]
/// past it, given `next` (the first fire time after an instant) and `latest` (the last at or
/// before one).
///
/// Walking every fire time of a year is too slow for a dense schedule (an every-minute one
/// has half a million), so past the first two hours the walk jumps over fire times that lie
/// within [`PROBE_STEP`] of the last one visited: the gaps between those are all shorter
/// than a step, and a gap of a step or more always starts at a visited fire time, so it is
/// measured exactly. At most about two look-ups per step of the span.
fn longest_gap(
    next: impl Fn(DateTime<Utc>) -> Option<DateTime<Utc>>,
    latest: impl Fn(DateTime<Utc>) -> Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<f64> {
    let first = next(now)?;
    let end = first + CRON_SPAN;
    let visit_all_until = first + PROBE_STEP * 2;
    let mut at = first;
    let mut longest: Option<TimeDelta> = None;
    while let Some(following) = next(at) {
        let gap = following - at;
        longest = longest.max(Some(gap));
        if following >= end {
            break;
        }
        at = if gap >= PROBE_STEP || following < visit_all_until {
            following
        } else {
            latest(at + PROBE_STEP).map_or(following, |l| l.max(following))
        };
    }
    longest.map(|gap| gap.num_milliseconds() as f64 / 1000.0)
}

/// What the families say for one config: per enabled periodic scan, its interval and when
/// this daemon first served the scan.
#[derive(Debug)]
pub struct ScheduleMetrics {
    config: Arc<Config>,
    scans: BTreeMap<String, PeriodicScan>,
}

#[derive(Debug, Clone, Copy)]
struct PeriodicScan {
    interval: f64,
    first_served: DateTime<Utc>,
}

impl ScheduleMetrics {
    /// For `config`, at `now`; a scan that `previous` (the config before a reload) had keeps
    /// its first-served time, any other gets `since`. The jitter is added to each interval:
    /// a run that started at its time and the next one that waited the whole jitter are that
    /// much further apart, and a healthy scan must not look stale for it.
    fn new(
        config: Arc<Config>,
        now: DateTime<Utc>,
        since: DateTime<Utc>,
        previous: Option<&ScheduleMetrics>,
    ) -> ScheduleMetrics {
        let jitter = config.daemon.jitter.as_secs_f64();
        let scans = config
            .scans
            .iter()
            .filter(|s| s.enabled)
            .filter_map(|s| {
                let interval = interval_seconds(&s.schedule, now)? + jitter;
                let first_served = previous
                    .and_then(|p| p.scans.get(&s.name))
                    .map_or(since, |p| p.first_served);
                Some((
                    s.name.clone(),
                    PeriodicScan {
                        interval,
                        first_served,
                    },
                ))
            })
            .collect();
        ScheduleMetrics { config, scans }
    }

    /// The families in the Prometheus text format, one series per enabled periodic scan.
    /// `created` is the store's scans by the start of their first run (RFC 3339): a scan's
    /// creation is the earlier of that and when this daemon first served it, so a scan that
    /// never ran (a cron scan before its first time, a scheduler that never fires) has one,
    /// and a restart does not move it later.
    pub fn render(&self, created: &BTreeMap<String, String>) -> String {
        let interval: Family<ScanLabels, Gauge<f64, AtomicU64>> = Family::default();
        let since: Family<ScanLabels, Gauge<f64, AtomicU64>> = Family::default();
        for (name, scan) in &self.scans {
            let labels = ScanLabels { scan: name.clone() };
            interval.get_or_create(&labels).set(scan.interval);
            let served = scan.first_served.timestamp_millis() as f64 / 1000.0;
            let first_run = created
                .get(name)
                .and_then(|at| crate::metrics::unix_seconds(at));
            since
                .get_or_create(&labels)
                .set(first_run.map_or(served, |at| at.min(served)));
        }
        let mut registry = crate::metrics::node_registry();
        registry.register(
            "scansync_scan_interval_seconds",
            "The longest time between two scheduled runs of each periodic scan (every: its duration; cron: the longest gap over the next 400 days), plus [daemon] jitter",
            interval,
        );
        registry.register(
            "scansync_scan_created_timestamp_seconds",
            "When each periodic scan came to be, in Unix seconds: the earlier of its first run's start and when this daemon first had it in its config",
            since,
        );
        let mut text = String::new();
        encode_registry(&mut text, &registry).expect("writing to a String");
        text
    }
}

/// The [`ScheduleMetrics`] of the config in force, worked out when a scrape first sees that
/// config (at start-up, after each reload), not at every scrape.
#[derive(Debug)]
pub struct ScheduleCache {
    /// When the listener started: the first config's scans are served from then on.
    started: DateTime<Utc>,
    slot: Mutex<Option<Arc<ScheduleMetrics>>>,
}

impl ScheduleCache {
    pub fn new(started: DateTime<Utc>) -> ScheduleCache {
        ScheduleCache {
            started,
            slot: Mutex::new(None),
        }
    }

    /// The families for `config` (the one in force now).
    pub fn get(&self, config: &Arc<Config>) -> Arc<ScheduleMetrics> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cached) = slot.as_ref().filter(|c| Arc::ptr_eq(&c.config, config)) {
            return cached.clone();
        }
        let now = Utc::now();
        let since = if slot.is_some() { now } else { self.started };
        let fresh = Arc::new(ScheduleMetrics::new(
            config.clone(),
            now,
            since,
            slot.as_deref(),
        ));
        *slot = Some(fresh.clone());
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::without_node;
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

    const HOUR: f64 = 3600.0;
    const DAY: f64 = 24.0 * HOUR;

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
        assert_eq!(interval_seconds(&cron("0 0 2 * * *"), now), Some(DAY));
        assert_eq!(
            interval_seconds(&cron("0 0 9 * * MON-FRI"), now),
            Some(3.0 * DAY)
        );
    }

    #[test]
    fn an_office_hours_cron_counts_the_weekend_not_its_five_minutes() {
        // Every 5 minutes 09:00-17:55 on weekdays: Friday 17:55 to Monday 09:00. Asked on a
        // Tuesday morning, and on a Saturday (the weekend gap is then a week away).
        let office = cron("0 */5 9-17 * * Mon-Fri");
        let weekend = 2.0 * DAY + 15.0 * HOUR + 5.0 * 60.0;
        assert_eq!(
            interval_seconds(&office, at("2026-12-01T09:02:00Z")),
            Some(weekend)
        );
        assert_eq!(
            interval_seconds(&office, at("2026-12-05T12:00:00Z")),
            Some(weekend)
        );
    }

    #[test]
    fn a_monthly_cron_counts_its_longest_month_and_a_yearly_one_its_year() {
        let now = at("2026-12-01T12:00:00Z");
        assert_eq!(
            interval_seconds(&cron("0 0 3 1 * *"), now),
            Some(31.0 * DAY)
        );
        let yearly = interval_seconds(&cron("0 0 3 1 1 *"), now).unwrap();
        assert!(yearly >= 365.0 * DAY, "{yearly}");
    }

    #[test]
    fn dense_crons_count_their_longest_short_gap() {
        let now = at("2026-12-01T12:34:56Z");
        assert_eq!(interval_seconds(&cron("0 */5 * * * *"), now), Some(300.0));
        // 10 and 50 minutes apart: the 50 must be seen, whatever the phase of `now`.
        assert_eq!(
            interval_seconds(&cron("0 0,10 * * * *"), now),
            Some(50.0 * 60.0)
        );
        assert_eq!(interval_seconds(&cron("* * * * * *"), now), Some(1.0));
    }

    #[test]
    fn a_local_time_cron_counts_the_long_day_of_a_dst_change() {
        let daily = Schedule::Cron {
            expr: "0 0 9 * * *".to_string(),
            timezone: chrono_tz::Europe::Berlin,
        };
        assert_eq!(
            interval_seconds(&daily, at("2026-12-01T12:00:00Z")),
            Some(25.0 * HOUR)
        );
    }

    fn config(dir: &std::path::Path, scans: &str) -> Arc<Config> {
        let text = format!(
            "[store]\npath = \"s.db\"\n\
             [instances.ct]\nvendor = \"codethreat\"\nurl = \"https://ct.example\"\n\
             organization = \"o\"\ntoken = \"t\"\n{scans}"
        );
        Arc::new(
            Config::from_toml(&text, &dir.join("c.toml"), crate::vendors::REGISTRY)
                .unwrap()
                .config,
        )
    }

    #[test]
    fn the_text_has_one_series_per_periodic_scan() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(
            dir.path(),
            "[[scans]]\nname = \"nightly\"\ninstance = \"ct\"\nbind_to = \"p\"\n\
             schedule = { cron = \"0 0 2 * * *\" }\n\
             [[scans]]\nname = \"once\"\ninstance = \"ct\"\nbind_to = \"p\"\nschedule = \"now\"\n\
             [[scans]]\nname = \"off\"\ninstance = \"ct\"\nbind_to = \"p\"\nenabled = false\n\
             schedule = { every = \"1h\" }\n",
        );
        let cache = ScheduleCache::new(at("2026-12-01T12:00:00Z"));
        let out = without_node(&cache.get(&config).render(&BTreeMap::new()));
        assert!(
            out.contains("# TYPE scansync_scan_interval_seconds gauge\n"),
            "{out}"
        );
        assert!(
            out.contains("scansync_scan_interval_seconds{scan=\"nightly\"} 86400.0\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "scansync_scan_created_timestamp_seconds{scan=\"nightly\"} 1796126400.0\n"
            ),
            "{out}"
        );
        assert!(!out.contains("once") && !out.contains("\"off\""), "{out}");
    }

    #[test]
    fn the_interval_counts_the_jitter() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(
            dir.path(),
            "[daemon]\njitter = \"2h\"\n\
             [[scans]]\nname = \"hourly\"\ninstance = \"ct\"\nbind_to = \"p\"\n\
             schedule = { every = \"1h\" }\n",
        );
        let out = without_node(
            &ScheduleCache::new(at("2026-12-01T12:00:00Z"))
                .get(&config)
                .render(&BTreeMap::new()),
        );
        assert!(
            out.contains("scansync_scan_interval_seconds{scan=\"hourly\"} 10800.0\n"),
            "{out}"
        );
    }

    #[test]
    fn a_scan_is_created_at_its_first_run_or_first_serving_whichever_came_first() {
        let dir = tempfile::tempdir().unwrap();
        let scan = |name: &str| {
            format!(
                "[[scans]]\nname = \"{name}\"\ninstance = \"ct\"\nbind_to = \"p\"\n\
                 schedule = {{ every = \"1h\" }}\n"
            )
        };
        let cache = ScheduleCache::new(at("2026-12-01T12:00:00Z"));
        let first = config(dir.path(), &scan("old"));
        let served = cache.get(&first);
        assert!(Arc::ptr_eq(&served, &cache.get(&first)), "one per config");
        let created = BTreeMap::from([
            ("old".to_string(), "2026-11-01T00:00:00.000Z".to_string()),
            ("late".to_string(), "2030-01-01T00:00:00.000Z".to_string()),
        ]);
        let out = without_node(&served.render(&created));
        assert!(
            out.contains("scansync_scan_created_timestamp_seconds{scan=\"old\"} 1793491200.0\n"),
            "{out}"
        );
        // A reload that adds a scan: the old one keeps its time, the new one is served from
        // now, even when the store dates it later (its first run came after).
        let reloaded = config(dir.path(), &format!("{}{}", scan("old"), scan("late")));
        let out = without_node(&cache.get(&reloaded).render(&created));
        assert!(
            out.contains("scansync_scan_created_timestamp_seconds{scan=\"old\"} 1793491200.0\n"),
            "{out}"
        );
        let late: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix("scansync_scan_created_timestamp_seconds{scan=\"late\"} "))
            .unwrap()
            .parse()
            .unwrap();
        let now = Utc::now().timestamp() as f64;
        assert!((now - 60.0..=now + 1.0).contains(&late), "{late} vs {now}");
    }
}
