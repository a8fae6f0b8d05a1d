//! Injected failures: what a flaky network, a rate limiter or a misconfigured proxy does to a
//! client, so retry and error paths can be tested against something real.

use std::fmt;
use std::str::FromStr;

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// 429 with `Retry-After: 1`.
    Status429,
    /// 500 with a JSON error body.
    Status500,
    /// The request is held unanswered (120 s) so the client's timeout fires.
    Timeout,
    /// A findings page whose JSON body is cut in the middle, with status 200.
    Truncated,
    /// An HTML page (alternately 200 and 502) where JSON was expected, as a proxy or login
    /// page would send.
    Html,
}

impl FaultKind {
    /// Truncation only makes sense for a findings page; the other kinds hit any vendor route.
    pub fn applies_to(self, listing: bool) -> bool {
        match self {
            FaultKind::Truncated => listing,
            _ => true,
        }
    }

    fn word(self) -> &'static str {
        match self {
            FaultKind::Status429 => "429",
            FaultKind::Status500 => "500",
            FaultKind::Timeout => "timeout",
            FaultKind::Truncated => "truncated",
            FaultKind::Html => "html",
        }
    }
}

/// One injected failure and how often it fires.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    /// Probability per matching request, 0..=1.
    pub rate: f64,
    /// When set, the fault hits only the first N matching requests (and `rate` is ignored):
    /// "429 once, then success".
    pub first: Option<u32>,
    /// When set, the fault hits only the Nth matching request (1-based; `rate` and `first`
    /// are ignored): "the third findings page is cut", whatever the seed.
    pub nth: Option<u32>,
}

impl Fault {
    /// A fault on every matching request.
    pub fn always(kind: FaultKind) -> Fault {
        Fault {
            kind,
            rate: 1.0,
            first: None,
            nth: None,
        }
    }

    /// A fault on the first `n` matching requests only.
    pub fn first(kind: FaultKind, n: u32) -> Fault {
        Fault {
            kind,
            rate: 1.0,
            first: Some(n),
            nth: None,
        }
    }

    /// A fault on the `n`th matching request only (1-based).
    pub fn nth(kind: FaultKind, n: u32) -> Fault {
        Fault {
            kind,
            rate: 1.0,
            first: None,
            nth: Some(n),
        }
    }
}

/// Why a `--fault` value was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultParseError {
    #[error("unknown fault kind \"{0}\" (use 429, 500, timeout, truncated or html)")]
    UnknownKind(String),
    #[error("bad fault rate \"{0}\" (use a probability like 0.1, a percent like 10%, xN for the first N requests, or @N for the Nth request only)")]
    BadRate(String),
}

impl FromStr for Fault {
    type Err = FaultParseError;

    /// `KIND[:RATE]`, RATE being `0.1`, `10%`, `xN` (first N) or `@N` (the Nth only); `KIND@N`
    /// is short for `KIND:@N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind_word, rate_word) = match s.split_once(':') {
            Some((k, r)) => (k, Some(r)),
            None => match s.find('@') {
                Some(at) => (&s[..at], Some(&s[at..])),
                None => (s, None),
            },
        };
        let kind = match kind_word.trim().to_ascii_lowercase().as_str() {
            "429" => FaultKind::Status429,
            "500" => FaultKind::Status500,
            "timeout" => FaultKind::Timeout,
            "truncated" => FaultKind::Truncated,
            "html" => FaultKind::Html,
            other => return Err(FaultParseError::UnknownKind(other.to_string())),
        };
        let Some(rate_word) = rate_word.map(str::trim) else {
            return Ok(Fault::always(kind));
        };
        let bad = || FaultParseError::BadRate(rate_word.to_string());
        if let Some(n) = rate_word.strip_prefix('x') {
            let n: u32 = n.parse().map_err(|_| bad())?;
            return Ok(Fault::first(kind, n));
        }
        if let Some(n) = rate_word.strip_prefix('@') {
            let n: u32 = n.parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(bad());
            }
            return Ok(Fault::nth(kind, n));
        }
        let rate = match rate_word.strip_suffix('%') {
            Some(pct) => pct.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
            None => rate_word.parse::<f64>().map_err(|_| bad())?,
        };
        if !(0.0..=1.0).contains(&rate) {
            return Err(bad());
        }
        Ok(Fault {
            kind,
            rate,
            first: None,
            nth: None,
        })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.nth, self.first) {
            (Some(n), _) => write!(f, "{}@{n}", self.kind.word()),
            (None, Some(n)) => write!(f, "{}:x{n}", self.kind.word()),
            (None, None) => write!(f, "{}:{}", self.kind.word(), self.rate),
        }
    }
}

/// The faults in force and how many matching requests each has seen, so `xN` and the
/// seeded coin flips are deterministic for a given request order.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    faults: Vec<Fault>,
    seen: Vec<u64>,
}

impl FaultPlan {
    pub(crate) fn new(faults: Vec<Fault>) -> FaultPlan {
        let seen = vec![0; faults.len()];
        FaultPlan { faults, seen }
    }

    /// The fault to inject into this request, if any, and its ordinal among the requests it
    /// hit (used to alternate HTML statuses). The first fault in the list that fires wins.
    pub(crate) fn decide(&mut self, seed: u64, listing: bool) -> Option<(FaultKind, u64)> {
        for (i, fault) in self.faults.iter().enumerate() {
            if !fault.kind.applies_to(listing) {
                continue;
            }
            let n = self.seen[i];
            self.seen[i] += 1;
            let fires = match (fault.nth, fault.first) {
                (Some(nth), _) => n + 1 == nth as u64,
                (None, Some(limit)) => n < limit as u64,
                (None, None) => {
                    fault.rate >= 1.0
                        || super::data::unit(super::data::hash(&[0xFA17, seed, i as u64, n]))
                            < fault.rate
                }
            };
            if fires {
                return Some((fault.kind, n));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_probability_percent_and_first_n() {
        assert_eq!("429".parse(), Ok(Fault::always(FaultKind::Status429)));
        assert_eq!("500:0.25".parse::<Fault>().unwrap().rate, 0.25);
        assert_eq!("html:10%".parse::<Fault>().unwrap().rate, 0.1);
        assert_eq!(
            "timeout:x3".parse(),
            Ok(Fault::first(FaultKind::Timeout, 3))
        );
        assert!(matches!(
            "nope".parse::<Fault>(),
            Err(FaultParseError::UnknownKind(_))
        ));
        assert!(matches!(
            "429:2".parse::<Fault>(),
            Err(FaultParseError::BadRate(_))
        ));
    }

    #[test]
    fn first_n_fires_exactly_n_times_then_stops() {
        let mut plan = FaultPlan::new(vec![Fault::first(FaultKind::Status429, 2)]);
        let fired: Vec<bool> = (0..5).map(|_| plan.decide(1, false).is_some()).collect();
        assert_eq!(fired, [true, true, false, false, false]);
    }

    #[test]
    fn at_n_fires_on_the_nth_request_only_and_round_trips() {
        let fault: Fault = "truncated@3".parse().unwrap();
        assert_eq!(fault, Fault::nth(FaultKind::Truncated, 3));
        assert_eq!("truncated:@3".parse::<Fault>().unwrap(), fault);
        assert_eq!(fault.to_string().parse::<Fault>().unwrap(), fault);
        assert!("500@0".parse::<Fault>().is_err());
        let mut plan = FaultPlan::new(vec![fault]);
        let fired: Vec<bool> = (0..5).map(|_| plan.decide(1, true).is_some()).collect();
        assert_eq!(fired, [false, false, true, false, false]);
    }

    #[test]
    fn truncation_skips_requests_that_are_not_listings() {
        let mut plan = FaultPlan::new(vec![Fault::first(FaultKind::Truncated, 1)]);
        assert_eq!(plan.decide(1, false), None);
        assert_eq!(plan.decide(1, true), Some((FaultKind::Truncated, 0)));
        assert_eq!(plan.decide(1, true), None);
    }

    #[test]
    fn rate_is_roughly_honoured_and_deterministic() {
        let run = || {
            let mut plan = FaultPlan::new(vec!["500:0.3".parse().unwrap()]);
            (0..1000)
                .filter(|_| plan.decide(9, false).is_some())
                .count()
        };
        let hits = run();
        assert_eq!(hits, run());
        assert!((200..400).contains(&hits), "{hits}");
    }
}
