//! Injected failures: what a flaky network, a rate limiter or a misconfigured proxy does to a
//! client, so retry and error paths can be tested against something real; and deceptive
//! answers (200 OK, valid JSON, a pager that lies about the listing) so a connector's
//! completeness checks can be tested against something that looks honest.
//!
//! Which requests a fault can hit is [`FaultKind::applies_to`]: the transport faults hit any
//! vendor request, `truncated` any listing, the deceptive ones only findings pages (CodeThreat
//! `GET /api/scanlog/issues`, Salt Security `GET /v1/apigovern/posture/gaps`). `xN` and `@N`
//! count only the requests a fault can hit.

use super::SimVendor;

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
    /// `empty_page`: a further findings page (CodeThreat `pid=…&page=i`, Salt Security
    /// `offset > 0`) answered `200` with no items: CodeThreat `[]` under its pager, Salt
    /// `{"response": [], "endOffset": <offset>}` (which ends a Salt listing early).
    EmptyPage,
    /// `short_page`: a further CodeThreat page loses the second half of its issues.
    ShortPage,
    /// `repeat_page`: a further findings page serves the previous page's items again
    /// (CodeThreat page i answers page i−1, page 1 the first body; Salt the items at
    /// `offset − limit`, with `endOffset` moving on as if the page were new).
    RepeatPage,
    /// `no_pager`: the first CodeThreat issues page comes without `x-ct-pager`.
    NoPager,
    /// `endless_pager`: a pager that never ends. CodeThreat: the first page's `x-ct-pager`
    /// announces 1,000,000 further pages, and pages past the data start the listing over.
    /// Salt Security: `endOffset` always moves on by `limit` and offsets past the data start
    /// the listing over, so no empty page ever comes.
    EndlessPager,
    /// `stuck_offset`: a Salt Security gaps page whose `endOffset` is the offset asked for.
    StuckOffset,
}

/// What a request is, as far as faults are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Any other vendor request (status, projects, …).
    Other,
    /// A listing that is not a findings page walk (inventory, the newer POST issues form, …).
    Listing,
    /// The first page of a findings listing: CodeThreat without `pid`, Salt at offset 0.
    FirstFindingsPage(SimVendor),
    /// A later page: CodeThreat with `pid`, Salt at an offset above 0.
    FurtherFindingsPage(SimVendor),
}

impl FaultKind {
    /// Truncation only makes sense for a listing, the deceptive kinds for the findings pages
    /// whose pager they lie about; the transport kinds hit any vendor route.
    pub fn applies_to(self, request: RequestKind) -> bool {
        use RequestKind::{FirstFindingsPage as First, FurtherFindingsPage as Further};
        use SimVendor::{CodeThreat, Salt};
        match self {
            FaultKind::Status429 | FaultKind::Status500 | FaultKind::Timeout | FaultKind::Html => {
                true
            }
            FaultKind::Truncated => request != RequestKind::Other,
            FaultKind::EmptyPage | FaultKind::RepeatPage => matches!(request, Further(_)),
            FaultKind::ShortPage => request == Further(CodeThreat),
            FaultKind::NoPager => request == First(CodeThreat),
            FaultKind::EndlessPager => {
                matches!(request, First(CodeThreat) | First(Salt) | Further(Salt))
            }
            FaultKind::StuckOffset => matches!(request, First(Salt) | Further(Salt)),
        }
    }

    /// True for the kinds the vendor handlers act out (a 200 that lies), false for the ones
    /// the request gate answers itself.
    pub fn is_deceptive(self) -> bool {
        matches!(
            self,
            FaultKind::EmptyPage
                | FaultKind::ShortPage
                | FaultKind::RepeatPage
                | FaultKind::NoPager
                | FaultKind::EndlessPager
                | FaultKind::StuckOffset
        )
    }

    fn word(self) -> &'static str {
        match self {
            FaultKind::Status429 => "429",
            FaultKind::Status500 => "500",
            FaultKind::Timeout => "timeout",
            FaultKind::Truncated => "truncated",
            FaultKind::Html => "html",
            FaultKind::EmptyPage => "empty_page",
            FaultKind::ShortPage => "short_page",
            FaultKind::RepeatPage => "repeat_page",
            FaultKind::NoPager => "no_pager",
            FaultKind::EndlessPager => "endless_pager",
            FaultKind::StuckOffset => "stuck_offset",
        }
    }

    /// Every kind, in the order the help lists them.
    pub const ALL: [FaultKind; 11] = [
        FaultKind::Status429,
        FaultKind::Status500,
        FaultKind::Timeout,
        FaultKind::Truncated,
        FaultKind::Html,
        FaultKind::EmptyPage,
        FaultKind::ShortPage,
        FaultKind::RepeatPage,
        FaultKind::NoPager,
        FaultKind::EndlessPager,
        FaultKind::StuckOffset,
    ];
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
    #[error("unknown fault kind \"{0}\" (use 429, 500, timeout, truncated, html, empty_page, short_page, repeat_page, no_pager, endless_pager or stuck_offset)")]
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
        let word = kind_word.trim().to_ascii_lowercase().replace('-', "_");
        let Some(kind) = FaultKind::ALL.into_iter().find(|k| k.word() == word) else {
            return Err(FaultParseError::UnknownKind(word));
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
    pub(crate) fn decide(&mut self, seed: u64, request: RequestKind) -> Option<(FaultKind, u64)> {
        for (i, fault) in self.faults.iter().enumerate() {
            if !fault.kind.applies_to(request) {
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
        let fired: Vec<bool> = (0..5)
            .map(|_| plan.decide(1, RequestKind::Other).is_some())
            .collect();
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
        let fired: Vec<bool> = (0..5)
            .map(|_| plan.decide(1, RequestKind::Listing).is_some())
            .collect();
        assert_eq!(fired, [false, false, true, false, false]);
    }

    #[test]
    fn truncation_skips_requests_that_are_not_listings() {
        let mut plan = FaultPlan::new(vec![Fault::first(FaultKind::Truncated, 1)]);
        assert_eq!(plan.decide(1, RequestKind::Other), None);
        assert_eq!(
            plan.decide(1, RequestKind::Listing),
            Some((FaultKind::Truncated, 0))
        );
        assert_eq!(plan.decide(1, RequestKind::Listing), None);
    }

    #[test]
    fn rate_is_roughly_honoured_and_deterministic() {
        let run = || {
            let mut plan = FaultPlan::new(vec!["500:0.3".parse().unwrap()]);
            (0..1000)
                .filter(|_| plan.decide(9, RequestKind::Other).is_some())
                .count()
        };
        let hits = run();
        assert_eq!(hits, run());
        assert!((200..400).contains(&hits), "{hits}");
    }

    #[test]
    fn deceptive_kinds_parse_round_trip_and_hit_only_the_pages_they_lie_about() {
        use RequestKind::{FirstFindingsPage as First, FurtherFindingsPage as Further};
        use SimVendor::{CodeThreat, Salt};
        for kind in FaultKind::ALL {
            let fault = Fault::nth(kind, 2);
            assert_eq!(fault.to_string().parse::<Fault>().unwrap(), fault);
        }
        assert_eq!(
            "empty-page:x1".parse(),
            Ok(Fault::first(FaultKind::EmptyPage, 1))
        );
        let hits = |kind: FaultKind| {
            [
                RequestKind::Other,
                RequestKind::Listing,
                First(CodeThreat),
                Further(CodeThreat),
                First(Salt),
                Further(Salt),
            ]
            .map(|r| kind.applies_to(r))
        };
        assert_eq!(
            hits(FaultKind::EmptyPage),
            [false, false, false, true, false, true]
        );
        assert_eq!(
            hits(FaultKind::RepeatPage),
            [false, false, false, true, false, true]
        );
        assert_eq!(
            hits(FaultKind::ShortPage),
            [false, false, false, true, false, false]
        );
        assert_eq!(
            hits(FaultKind::NoPager),
            [false, false, true, false, false, false]
        );
        assert_eq!(
            hits(FaultKind::EndlessPager),
            [false, false, true, false, true, true]
        );
        assert_eq!(
            hits(FaultKind::StuckOffset),
            [false, false, false, false, true, true]
        );
        assert_eq!(
            hits(FaultKind::Truncated),
            [false, true, true, true, true, true]
        );
        // `@N` counts only the pages the fault can hit: the second further page here.
        let mut plan = FaultPlan::new(vec!["empty_page@2".parse().unwrap()]);
        let seen: Vec<bool> = [
            First(CodeThreat),
            Further(CodeThreat),
            RequestKind::Other,
            Further(CodeThreat),
            Further(CodeThreat),
        ]
        .into_iter()
        .map(|r| plan.decide(1, r).is_some())
        .collect();
        assert_eq!(seen, [false, false, false, true, false]);
    }
}
