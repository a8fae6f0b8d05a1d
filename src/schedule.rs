//! When each scan runs: the pure decisions behind the daemon's jobs, kept apart from the
//! scheduler so they can be tested without clocks or a store.
//!
//! Rules (also in the README):
//! - `now` runs at start-up unless the store's last run of that scan succeeded: a restart
//!   does not repeat a completed start-up run, but a run that failed or was interrupted is
//!   tried again.
//! - `{ at = … }` in the future runs once at that instant. One already past runs once at
//!   start-up when the store holds no run of that scan started at or after the instant
//!   ("missed while scansync was not running"), and is skipped otherwise.
//! - `{ cron = … }` and `{ every = … }` are periodic; their first run is the first tick, not
//!   start-up, so restarting the daemon does not hit the vendor again.

use crate::config::{ScanConfig, Schedule};
use crate::store::RunState;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// What the store remembers about a scan's last run, as far as scheduling cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastRun {
    pub state: RunState,
    pub started_at: DateTime<Utc>,
}

/// What to do with one enabled scan when the daemon starts (or a reload adds it).
#[derive(Debug, Clone, PartialEq)]
pub enum StartupPlan {
    /// Start a run right away, with this trigger; `missed` explains a past `at`.
    RunNow {
        trigger: &'static str,
        missed: Option<DateTime<Utc>>,
    },
    /// Nothing to do, for this reason (logged).
    Skip(String),
    /// One run at this instant.
    OnceAt(DateTime<Utc>),
    /// A run every so long. `run_now`: the scan never ran, or its last run started an
    /// interval or more ago, so one runs at once (a nightly restart must not starve an
    /// `every = "24h"` scan); otherwise the first comes one interval after start-up.
    Every { every: Duration, run_now: bool },
    /// A run at each cron occurrence, computed one at a time in the scan's time zone.
    Cron,
}

/// The trigger recorded on runs started by a periodic schedule.
pub const TRIGGER_SCHEDULE: &str = "schedule";
/// The trigger recorded on a run that polls a vendor scan left by a previous process.
pub const TRIGGER_RESUME: &str = "resume";
/// The triggers of the daemon's own runs: a run with one of them served a due time (see
/// `sync::RunOptions::covered_since`); a CLI run or a push asked for a scan of now.
pub const SCHEDULED_TRIGGERS: &[&str] = &[TRIGGER_SCHEDULE, "now", "at", TRIGGER_RESUME];

/// Decides what start-up means for a scan with this schedule, given its last run.
pub fn plan_startup(
    schedule: &Schedule,
    now: DateTime<Utc>,
    last_run: Option<LastRun>,
) -> StartupPlan {
    match schedule {
        Schedule::Now => match last_run {
            Some(last) if last.state == RunState::Succeeded => StartupPlan::Skip(format!(
                "schedule \"now\": the last run (started {}) succeeded; not running again after a restart",
                last.started_at.to_rfc3339()
            )),
            _ => StartupPlan::RunNow {
                trigger: "now",
                missed: None,
            },
        },
        Schedule::At(at) => {
            let at = at.with_timezone(&Utc);
            if at > now {
                StartupPlan::OnceAt(at)
            } else if last_run.is_some_and(|l| l.started_at >= at) {
                StartupPlan::Skip(format!(
                    "schedule at {}: already ran at or after that instant",
                    at.to_rfc3339()
                ))
            } else {
                StartupPlan::RunNow {
                    trigger: "at",
                    missed: Some(at),
                }
            }
        }
        Schedule::Every(every) => StartupPlan::Every {
            every: *every,
            run_now: last_run.is_none_or(|last| {
                chrono::Duration::from_std(*every).is_ok_and(|d| last.started_at + d <= now)
            }),
        },
        Schedule::Cron { .. } => StartupPlan::Cron,
    }
}

/// A random delay in `[0, max]`, so scans sharing a tick do not reach a vendor in the same
/// second.
pub fn jitter_delay(max: Duration) -> Duration {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if max_ms == 0 {
        Duration::ZERO
    } else {
        Duration::from_millis(fastrand::u64(0..=max_ms))
    }
}

/// Asserts that `samples` (milliseconds, at least 10,000 of them) are drawn uniformly from
/// `lo..=hi`, not merely that they stay under a ceiling: they reach both ends, their mean is
/// the middle, and each tenth of the range holds a tenth of them. The bounds are ten or more
/// standard deviations wide, so a true uniform draw does not fail them by chance, while a
/// constant, a draw from half the range, or one skewed towards either end does.
#[cfg(test)]
pub(crate) fn assert_uniform_ms(samples: &[u64], lo: u64, hi: u64) {
    let n = samples.len();
    assert!(n >= 10_000, "too few samples ({n}) to judge a distribution");
    let range = (hi - lo) as f64;
    let min = *samples.iter().min().unwrap();
    let max = *samples.iter().max().unwrap();
    assert!(
        min >= lo && max <= hi,
        "samples {min}..={max} outside {lo}..={hi}"
    );
    assert!(
        (min - lo) as f64 <= range * 0.02,
        "lowest sample {min}, range {lo}..={hi}"
    );
    assert!(
        (hi - max) as f64 <= range * 0.02,
        "highest sample {max}, range {lo}..={hi}"
    );
    let mean = samples.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let middle = (lo + hi) as f64 / 2.0;
    assert!(
        (mean - middle).abs() <= range * 0.02,
        "mean {mean} is not the middle {middle} of {lo}..={hi}"
    );
    let mut buckets = [0usize; 10];
    for &v in samples {
        let b = (((v - lo) as f64 / (range + 1.0)) * 10.0) as usize;
        buckets[b.min(9)] += 1;
    }
    let expected = n as f64 / 10.0;
    for (i, &count) in buckets.iter().enumerate() {
        assert!(
            (count as f64 - expected).abs() <= expected * 0.2,
            "tenth {i} of {lo}..={hi} holds {count} of {n} samples: {buckets:?}"
        );
    }
}

/// How the enabled scans differ between two configs, by what their jobs need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Newly present (or newly enabled): schedule them.
    pub added: Vec<String>,
    /// Gone (or disabled): drop their jobs; runs in flight finish.
    pub removed: Vec<String>,
    /// Schedule changed: drop the old job, schedule anew.
    pub rescheduled: Vec<String>,
    /// Same schedule: the job stays (its timer is not reset); the next run reads the new
    /// settings, since jobs look the scan up by name when they fire.
    pub kept: Vec<String>,
}

/// Compares the enabled scans of two configs by name and schedule.
pub fn plan_reload(old: &[ScanConfig], new: &[ScanConfig]) -> ReloadPlan {
    let enabled = |scans: &[ScanConfig]| -> BTreeMap<String, Schedule> {
        scans
            .iter()
            .filter(|s| s.enabled)
            .map(|s| (s.name.clone(), s.schedule.clone()))
            .collect()
    };
    let (old, new) = (enabled(old), enabled(new));
    let mut plan = ReloadPlan::default();
    for (name, schedule) in &new {
        match old.get(name) {
            None => plan.added.push(name.clone()),
            Some(previous) if previous != schedule => plan.rescheduled.push(name.clone()),
            Some(_) => plan.kept.push(name.clone()),
        }
    }
    plan.removed = old
        .keys()
        .filter(|name| !new.contains_key(*name))
        .cloned()
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn last(state: RunState, at: &str) -> Option<LastRun> {
        Some(LastRun {
            state,
            started_at: t(at),
        })
    }

    fn scan(name: &str, schedule: Schedule, enabled: bool) -> ScanConfig {
        ScanConfig {
            name: name.into(),
            instance: "ct".into(),
            bind_to: "p".into(),
            branch: None,
            environment: None,
            tags: vec![],
            metadata: Default::default(),
            min_severity: None,
            fix_guard: None,
            enabled,
            schedule,
            timeout: Duration::from_secs(7200),
            webhook: None,
        }
    }

    const NOW: &str = "2026-03-01T12:00:00Z";

    #[test]
    fn now_runs_when_the_scan_never_ran() {
        assert_eq!(
            plan_startup(&Schedule::Now, t(NOW), None),
            StartupPlan::RunNow {
                trigger: "now",
                missed: None
            }
        );
    }

    #[test]
    fn now_is_not_repeated_after_a_restart_when_the_last_run_succeeded() {
        let plan = plan_startup(
            &Schedule::Now,
            t(NOW),
            last(RunState::Succeeded, "2026-03-01T11:00:00Z"),
        );
        assert!(matches!(plan, StartupPlan::Skip(_)), "{plan:?}");
    }

    #[test]
    fn now_runs_again_when_the_last_run_was_interrupted_or_failed() {
        for state in [RunState::Interrupted, RunState::Failed, RunState::TimedOut] {
            let plan = plan_startup(&Schedule::Now, t(NOW), last(state, "2026-03-01T11:00:00Z"));
            assert!(
                matches!(plan, StartupPlan::RunNow { .. }),
                "{state:?}: {plan:?}"
            );
        }
    }

    #[test]
    fn future_at_is_scheduled_for_that_instant_in_utc() {
        let at = chrono::FixedOffset::east_opt(3600)
            .unwrap()
            .with_ymd_and_hms(2026, 3, 1, 15, 0, 0)
            .unwrap();
        assert_eq!(
            plan_startup(&Schedule::At(at), t(NOW), None),
            StartupPlan::OnceAt(t("2026-03-01T14:00:00Z"))
        );
    }

    #[test]
    fn past_at_that_never_ran_runs_once_and_says_it_was_missed() {
        let at = t("2026-03-01T09:00:00Z").fixed_offset();
        let plan = plan_startup(
            &Schedule::At(at),
            t(NOW),
            last(RunState::Succeeded, "2026-02-28T09:00:00Z"),
        );
        assert_eq!(
            plan,
            StartupPlan::RunNow {
                trigger: "at",
                missed: Some(t("2026-03-01T09:00:00Z"))
            }
        );
    }

    #[test]
    fn past_at_that_already_ran_is_skipped() {
        let at = t("2026-03-01T09:00:00Z").fixed_offset();
        let plan = plan_startup(
            &Schedule::At(at),
            t(NOW),
            last(RunState::Failed, "2026-03-01T09:00:01Z"),
        );
        assert!(matches!(plan, StartupPlan::Skip(_)), "{plan:?}");
    }

    #[test]
    fn an_every_scan_runs_at_start_up_when_it_never_ran_or_is_overdue() {
        let every = Duration::from_secs(3600);
        let plan = |last| plan_startup(&Schedule::Every(every), t(NOW), last);
        assert_eq!(
            plan(None),
            StartupPlan::Every {
                every,
                run_now: true
            }
        );
        // NOW is 2026-03-01T12:00:00Z.
        assert_eq!(
            plan(last(RunState::Succeeded, "2026-03-01T11:00:00Z")),
            StartupPlan::Every {
                every,
                run_now: true
            },
            "exactly one interval ago is due"
        );
        assert_eq!(
            plan(last(RunState::Failed, "2026-03-01T11:00:01Z")),
            StartupPlan::Every {
                every,
                run_now: false
            },
            "started less than an interval ago: the first run comes one interval on"
        );
    }

    #[test]
    fn cron_schedules_do_not_run_at_start_up() {
        let cron = Schedule::Cron {
            expr: "0 3 * * *".into(),
            timezone: chrono_tz::Europe::Berlin,
        };
        assert_eq!(plan_startup(&cron, t(NOW), None), StartupPlan::Cron);
    }

    #[test]
    fn jitter_is_uniform_over_its_bound_and_zero_means_none() {
        assert_eq!(jitter_delay(Duration::ZERO), Duration::ZERO);
        let samples: Vec<u64> = (0..20_000)
            .map(|_| jitter_delay(Duration::from_millis(250)).as_millis() as u64)
            .collect();
        assert_uniform_ms(&samples, 0, 250);
        let samples: Vec<u64> = (0..20_000)
            .map(|_| jitter_delay(Duration::from_secs(600)).as_millis() as u64)
            .collect();
        assert_uniform_ms(&samples, 0, 600_000);
    }

    #[test]
    fn the_uniformity_check_refuses_what_is_not_uniform() {
        let refuses = |samples: Vec<u64>| {
            std::panic::catch_unwind(|| assert_uniform_ms(&samples, 0, 1000)).is_err()
        };
        // A constant, the lower half only, and a skew towards the low end.
        assert!(refuses(vec![1000; 20_000]));
        assert!(refuses((0..20_000).map(|i| i % 500).collect()));
        assert!(refuses(
            (0..20_000u64)
                .map(|i| (i % 1001) * (i % 1001) / 1000)
                .collect()
        ));
        assert!(!refuses((0..20_000).map(|i| i % 1001).collect()));
    }

    #[test]
    fn reload_plan_sorts_scans_into_added_removed_rescheduled_kept() {
        let hourly = Schedule::Every(Duration::from_secs(3600));
        let daily = Schedule::Every(Duration::from_secs(86400));
        let old = vec![
            scan("kept", hourly.clone(), true),
            scan("changed", hourly.clone(), true),
            scan("gone", hourly.clone(), true),
            scan("disabled-now", hourly.clone(), true),
            scan("enabled-now", hourly.clone(), false),
        ];
        let new = vec![
            scan("kept", hourly.clone(), true),
            scan("changed", daily, true),
            scan("fresh", Schedule::Now, true),
            scan("disabled-now", hourly.clone(), false),
            scan("enabled-now", hourly, true),
        ];
        let plan = plan_reload(&old, &new);
        assert_eq!(plan.added, vec!["enabled-now", "fresh"]);
        assert_eq!(plan.removed, vec!["disabled-now", "gone"]);
        assert_eq!(plan.rescheduled, vec!["changed"]);
        assert_eq!(plan.kept, vec!["kept"]);
    }
}
