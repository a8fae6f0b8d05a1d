use super::*;

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
    /// an empty key for problems of the table as a whole.
    pub(super) fn from_parts(
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

pub(super) fn unknown_schedule_word(word: &str) -> String {
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
