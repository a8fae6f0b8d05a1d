//! Triage: a person's verdict on a finding (`scansync triage`), finding a row by id or
//! fingerprint, one finding's whole record and history (`scansync finding`), and the counts
//! the metrics need (acceptances about to expire).
//!
//! Who wins: a person's triage (`triage_source = 'local'`) over a `[[suppress]]` rule's
//! (`rule`, applied by the page import, see `UPSERT_FINDING_SQL`) over the vendor's word
//! (`vendor`). A triage is remembered while its finding is fixed or missing, so a finding
//! that comes back returns to it. An acceptance with `until` ends at the start of that day
//! (UTC), at the first run that lists the finding from then on: it becomes `open` again with
//! an `expired` event. The end is applied by imports rather than by a clock in the store, so
//! it is decided by the same transaction that decides everything else about the finding.

use super::db::{params, OptionalExtension, Row};
use super::{
    finding_from_row, now, FindingEvent, FindingRow, FindingState, Store, StoreError,
    FINDING_COLUMNS,
};
use std::collections::BTreeMap;

/// Who set a finding's triage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriageSource {
    /// A person, with `scansync triage`.
    Local,
    /// A `[[suppress]]` rule of the config.
    Rule,
    /// The vendor's own status word.
    Vendor,
}

impl TriageSource {
    /// The word in `findings.triage_source`.
    pub fn as_str(self) -> &'static str {
        match self {
            TriageSource::Local => "local",
            TriageSource::Rule => "rule",
            TriageSource::Vendor => "vendor",
        }
    }
}

/// The triage a finding row remembers. `state` is `None` when nobody triaged it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Triage {
    pub state: Option<FindingState>,
    pub source: Option<TriageSource>,
    pub reason: Option<String>,
    /// The person (local triage).
    pub by: Option<String>,
    /// `YYYY-MM-DD`: the acceptance ends at the start of that day (UTC).
    pub until: Option<String>,
    /// When it was given (RFC 3339 UTC).
    pub at: Option<String>,
    /// The `[[suppress]]` rule's name (rule triage).
    pub rule: Option<String>,
    pub reopen_on_severity_increase: bool,
}

impl Triage {
    /// Who, in a word for tables and exports: the person, `rule:NAME`, or `vendor`.
    pub fn who(&self) -> Option<String> {
        match self.source? {
            TriageSource::Local => self.by.clone(),
            TriageSource::Rule => self.rule.as_ref().map(|r| format!("rule:{r}")),
            TriageSource::Vendor => Some("vendor".to_string()),
        }
    }
}

/// A person's triage, as `scansync triage` gives it.
#[derive(Debug, Clone)]
pub struct TriageRequest {
    /// `FalsePositive` or `Accepted` set a triage; `Open` removes a person's (or the
    /// vendor's) triage.
    pub state: FindingState,
    pub reason: Option<String>,
    pub by: Option<String>,
    /// `YYYY-MM-DD`, for `Accepted` only.
    pub until: Option<chrono::NaiveDate>,
    /// For `Accepted`: a higher severity at the vendor ends the acceptance.
    pub reopen_on_severity_increase: bool,
}

impl Default for TriageRequest {
    fn default() -> Self {
        TriageRequest {
            state: FindingState::Open,
            reason: None,
            by: None,
            until: None,
            reopen_on_severity_increase: false,
        }
    }
}

/// One finding in full with its history, for `scansync finding`.
#[derive(Debug, Clone)]
pub struct FindingDetail {
    pub row: FindingRow,
    pub events: Vec<FindingEvent>,
}

/// Reads the triage columns `triage, triage_source, triage_reason, triage_by, triage_until,
/// triage_at, triage_rule, reopen_on_severity_increase` starting at index `first`.
pub(super) fn triage_from_row(r: &Row<'_>, first: usize) -> Result<Triage, StoreError> {
    let state = match r.get::<Option<String>>(first)? {
        Some(word) => Some(FindingState::parse(&word)?),
        None => None,
    };
    let source = match r.get::<Option<String>>(first + 1)?.as_deref() {
        None => None,
        Some("local") => Some(TriageSource::Local),
        Some("rule") => Some(TriageSource::Rule),
        Some("vendor") => Some(TriageSource::Vendor),
        Some(other) => return Err(super::unknown_word("triage source", other)),
    };
    Ok(Triage {
        state,
        source,
        reason: r.get(first + 2)?,
        by: r.get(first + 3)?,
        until: r.get(first + 4)?,
        at: r.get(first + 5)?,
        rule: r.get(first + 6)?,
        reopen_on_severity_increase: r.get::<Option<bool>>(first + 7)?.unwrap_or(false),
    })
}

/// The shortest fingerprint prefix taken as one (shorter hex is too likely to be ambiguous,
/// and an all-digit word that short is a row id).
pub const MIN_FINGERPRINT_PREFIX: usize = 8;

/// At most this many candidates are named in an ambiguity error.
const MAX_CANDIDATES_SHOWN: usize = 10;

impl Store {
    /// The row id of the finding `key` names: a row id (`findings.id`), or a fingerprint or
    /// a unique prefix of one (at least [`MIN_FINGERPRINT_PREFIX`] hex digits), within
    /// `scan` if given. A fingerprint in several scans, or a prefix of several fingerprints,
    /// is an error listing the candidates.
    pub fn resolve_finding(&self, key: &str, scan: Option<&str>) -> Result<i64, StoreError> {
        let key = key.trim();
        let is_hex = !key.is_empty() && key.chars().all(|c| c.is_ascii_hexdigit());
        let as_id = key
            .chars()
            .all(|c| c.is_ascii_digit())
            .then(|| key.parse::<i64>().ok())
            .flatten();
        let as_prefix = (is_hex && key.len() >= MIN_FINGERPRINT_PREFIX && key.len() <= 32)
            .then(|| key.to_ascii_lowercase());
        if as_id.is_none() && as_prefix.is_none() {
            return Err(StoreError::NoSuchFinding(format!(
                "\"{key}\" is neither a finding id nor a fingerprint (at least \
                 {MIN_FINGERPRINT_PREFIX} hex digits); `scansync findings` lists both"
            )));
        }
        // (id, scan, fingerprint, title)
        let mut candidates: Vec<(i64, String, String, String)> = Vec::new();
        let mut push = |c: (i64, String, String, String)| {
            if !candidates.iter().any(|have| have.0 == c.0) {
                candidates.push(c);
            }
        };
        let read = |r: &Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
        if let Some(id) = as_id {
            let found = self
                .conn
                .prepare_cached(
                    "SELECT f.id, s.name, f.fingerprint, f.title FROM findings f
                     JOIN scans s ON s.id = f.scan_id
                     WHERE f.id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR s.name = ?2)",
                )?
                .query_row(params![id, scan], read)
                .optional()?;
            if let Some(c) = found {
                push(c);
            }
        }
        if let Some(prefix) = &as_prefix {
            let mut stmt = self.conn.prepare_cached(
                "SELECT f.id, s.name, f.fingerprint, f.title FROM findings f
                 JOIN scans s ON s.id = f.scan_id
                 WHERE substr(f.fingerprint, 1, length(?1)) = ?1
                   AND (CAST(?2 AS TEXT) IS NULL OR s.name = ?2)
                 ORDER BY s.name, f.fingerprint LIMIT 50",
            )?;
            for c in stmt.query_map(params![prefix, scan], read)? {
                push(c?);
            }
        }
        let in_scan = scan
            .map(|s| format!(" in scan \"{s}\""))
            .unwrap_or_default();
        match candidates.as_slice() {
            [] => Err(StoreError::NoSuchFinding(format!(
                "no finding{in_scan} has the id or fingerprint \"{key}\"; \
                 `scansync findings` lists them"
            ))),
            [(id, ..)] => Ok(*id),
            many => {
                let same_fingerprint = many.iter().all(|c| c.2 == many[0].2);
                let shown: Vec<String> = many
                    .iter()
                    .take(MAX_CANDIDATES_SHOWN)
                    .map(|(id, scan, fp, title)| {
                        format!(
                            "  id {id}  scan {scan}  {fp}  {}",
                            crate::display::clean(title)
                        )
                    })
                    .collect();
                let more = match many.len().saturating_sub(MAX_CANDIDATES_SHOWN) {
                    0 => String::new(),
                    n => format!("\n  … and {n} more"),
                };
                let advice = if same_fingerprint {
                    "the fingerprint is in several scans; add --scan NAME or give the id"
                } else {
                    "give more of the fingerprint, or the id"
                };
                Err(StoreError::AmbiguousFinding(format!(
                    "\"{key}\" names {} findings; {advice}:\n{}{more}",
                    many.len(),
                    shown.join("\n")
                )))
            }
        }
    }

    /// One finding by row id.
    pub fn finding_by_id(&self, id: i64) -> Result<Option<FindingRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {FINDING_COLUMNS} FROM findings f
             JOIN scans s ON s.id = f.scan_id
             JOIN instances i ON i.id = s.instance_id
             WHERE f.id = ?1"
        ))?;
        let mut rows = stmt.query(params![id])?;
        match rows.next()? {
            Some(row) => Ok(Some(finding_from_row(&row)?)),
            None => Ok(None),
        }
    }

    /// A finding's history by row id, oldest first.
    pub fn events_of(&self, id: i64) -> Result<Vec<FindingEvent>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT run_id, kind, old_value, new_value, at, actor, reason, until, rule
             FROM finding_events WHERE finding_id = ?1 ORDER BY id",
        )?;
        let events = stmt
            .query_map(params![id], |r| {
                Ok(FindingEvent {
                    run_id: r.get(0)?,
                    kind: r.get(1)?,
                    old_value: r.get(2)?,
                    new_value: r.get(3)?,
                    at: r.get(4)?,
                    by: r.get(5)?,
                    reason: r.get(6)?,
                    until: r.get(7)?,
                    rule: r.get(8)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(events)
    }

    /// One finding and its history, by row id.
    pub fn finding_detail(&self, id: i64) -> Result<Option<FindingDetail>, StoreError> {
        let Some(row) = self.finding_by_id(id)? else {
            return Ok(None);
        };
        Ok(Some(FindingDetail {
            row,
            events: self.events_of(id)?,
        }))
    }

    /// Gives (or, with `Open`, removes) a person's triage of finding `id`, in one
    /// transaction with its `state_set` event. Returns the finding's state afterwards.
    ///
    /// - `false_positive` / `accepted`: remembered as the row's triage (source `local`, with
    ///   reason, by, until, and the severity it was given at). A finding the vendor no longer
    ///   lists (`fixed`, `missing`) keeps its state: reviving it would have the next
    ///   complete run "fix" it again and announce that; it returns to the triage if it comes
    ///   back.
    /// - `open`: removes a person's or the vendor's triage (the vendor's word applies again
    ///   at the next run that lists it). A rule's triage is the config's: removing it here
    ///   would last only until the next run, so it is refused with the rule's name.
    ///
    /// Each call that changes something writes one `state_set` event with who/why/until,
    /// even when the state stays (a new reason or date); one that changes nothing writes
    /// nothing.
    pub fn triage(&mut self, id: i64, req: &TriageRequest) -> Result<FindingState, StoreError> {
        Ok(self.triage_all(&[id], req)?[0])
    }

    /// [`Store::triage`] of several findings in one transaction: every one or none (a
    /// refusal for the third leaves the first two as they were). The new states, in order.
    pub fn triage_all(
        &mut self,
        ids: &[i64],
        req: &TriageRequest,
    ) -> Result<Vec<FindingState>, StoreError> {
        let at = now();
        let tx = self.conn.write_transaction()?;
        let states = ids
            .iter()
            .map(|id| triage_in(&tx, *id, req, &at))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()?;
        Ok(states)
    }

    /// Accepted findings whose acceptance ends before `before` (a `YYYY-MM-DD` or RFC 3339
    /// time), per scan (scans without any are absent). Ended ones that no run has reopened
    /// yet are counted too: they are the most urgent.
    pub fn acceptances_expiring(&self, before: &str) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.name, count(*) FROM findings f JOIN scans s ON s.id = f.scan_id
             WHERE f.state = 'accepted' AND f.triage_until IS NOT NULL AND f.triage_until < ?1
             GROUP BY s.name",
        )?;
        let rows = stmt.query_map(params![before], |r| {
            Ok((r.get::<String>(0)?, r.get::<i64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The body of [`Store::triage_all`] for one finding, inside its transaction.
fn triage_in(
    tx: &super::db::Tx<'_>,
    id: i64,
    req: &TriageRequest,
    at: &str,
) -> Result<FindingState, StoreError> {
    let state = req.state;
    if !(state.is_local() || state == FindingState::Open) {
        return Err(StoreError::Invalid(format!(
            "a finding's state can be set to false_positive, accepted or open, not {state}; \
                 the other states follow from imports"
        )));
    }
    if state != FindingState::Accepted && (req.until.is_some() || req.reopen_on_severity_increase) {
        return Err(StoreError::Invalid(
            "an end date (until) and reopen-on-severity-increase apply to accepted only".into(),
        ));
    }
    /// The row as the triage finds it.
    struct Current {
        state: String,
        severity: String,
        source: Option<String>,
        rule: Option<String>,
        reason: Option<String>,
        by: Option<String>,
        until: Option<String>,
        reopen: bool,
        triage: Option<String>,
    }
    let found: Option<Current> = tx
        .prepare_cached(
            "SELECT state, severity, triage_source, triage_rule, triage_reason, triage_by,
                        triage_until, reopen_on_severity_increase, triage
                 FROM findings WHERE id = ?1",
        )?
        .query_row(params![id], |r| {
            Ok(Current {
                state: r.get(0)?,
                severity: r.get(1)?,
                source: r.get(2)?,
                rule: r.get(3)?,
                reason: r.get(4)?,
                by: r.get(5)?,
                until: r.get(6)?,
                reopen: r.get(7)?,
                triage: r.get(8)?,
            })
        })
        .optional()?;
    let Some(Current {
        state: old_word,
        severity,
        source,
        rule,
        reason: old_reason,
        by: old_by,
        until: old_until,
        reopen: old_reopen,
        triage: old_triage,
    }) = found
    else {
        return Err(StoreError::NoSuchFinding(format!(
            "no finding has the id {id}; `scansync findings` lists them"
        )));
    };
    let old = FindingState::parse(&old_word)?;
    let absent = matches!(old, FindingState::Fixed | FindingState::Missing);
    let until = req.until.map(|d| d.format("%Y-%m-%d").to_string());
    let event = |tx: &super::db::Tx<'_>, new: FindingState| -> Result<(), StoreError> {
        tx.prepare_cached(
            "INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at,
                     actor, reason, until)
                 VALUES (?1, NULL, 'state_set', ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            id,
            old.as_str(),
            new.as_str(),
            at,
            req.by,
            req.reason,
            until
        ])?;
        Ok(())
    };
    if state == FindingState::Open {
        if source.as_deref() == Some("rule") {
            return Err(StoreError::Invalid(format!(
                "finding {id} is suppressed by the rule \"{}\" of the config; change or \
                     remove that [[suppress]] rule (its findings are released at their scan's \
                     next run), or triage the finding yourself",
                rule.unwrap_or_default()
            )));
        }
        if source.is_none() && !old.is_local() {
            return Ok(old);
        }
        tx.prepare_cached(
            "UPDATE findings SET triage = NULL, triage_source = NULL, triage_reason = NULL,
                     triage_by = NULL, triage_until = NULL, triage_at = NULL, triage_rule = NULL,
                     triage_severity = NULL, reopen_on_severity_increase = 0
                 WHERE id = ?1",
        )?
        .execute(params![id])?;
        let new = if absent || !old.is_local() {
            old
        } else {
            FindingState::Open
        };
        tx.prepare_cached("UPDATE findings SET state = ?2 WHERE id = ?1")?
            .execute(params![id, new.as_str()])?;
        event(tx, FindingState::Open)?;
        return Ok(new);
    }
    // Against the triage kept on the row: a fixed or missing finding keeps its state.
    let unchanged = source.as_deref() == Some("local")
        && old_triage.as_deref() == Some(state.as_str())
        && old_reason == req.reason
        && old_by == req.by
        && old_until == until
        && old_reopen == req.reopen_on_severity_increase;
    if unchanged {
        return Ok(old);
    }
    tx.prepare_cached(
        "UPDATE findings SET triage = ?2, triage_source = 'local', triage_reason = ?3,
                 triage_by = ?4, triage_until = ?5, triage_at = ?6, triage_rule = NULL,
                 triage_severity = ?7, reopen_on_severity_increase = ?8
             WHERE id = ?1",
    )?
    .execute(params![
        id,
        state.as_str(),
        req.reason,
        req.by,
        until,
        at,
        severity,
        req.reopen_on_severity_increase
    ])?;
    let new = if absent { old } else { state };
    tx.prepare_cached("UPDATE findings SET state = ?2 WHERE id = ?1")?
        .execute(params![id, new.as_str()])?;
    event(tx, state)?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{accept, finding, id_of, import, rule, scope, temp_store};
    use super::super::{FindingFilter, RunEnd};
    use super::*;
    use crate::config::SuppressState;
    use crate::finding::{Finding, Severity};

    fn row(store: &Store, f: &Finding) -> FindingRow {
        store.finding_by_id(id_of(store, f)).unwrap().unwrap()
    }

    fn history(store: &Store, f: &Finding) -> Vec<(String, Option<String>)> {
        store
            .events_of(id_of(store, f))
            .unwrap()
            .into_iter()
            .map(|e| (e.kind, e.new_value))
            .collect()
    }

    fn ev(kind: &str, new: &str) -> (String, Option<String>) {
        (kind.to_string(), Some(new.to_string()))
    }

    #[test]
    fn a_triage_holds_through_resyncs_is_fixed_when_gone_and_returns_with_its_reason() {
        let (_dir, mut store) = temp_store();
        let (f, other) = (finding(3), finding(4));
        let both = vec![f.clone(), other.clone()];
        import(
            &mut store,
            "shop",
            std::slice::from_ref(&both),
            RunEnd::Succeeded,
        );
        let id = id_of(&store, &f);
        assert_eq!(
            store.triage(id, &accept(Some("2999-01-01"))).unwrap(),
            FindingState::Accepted
        );
        import(
            &mut store,
            "shop",
            std::slice::from_ref(&both),
            RunEnd::Succeeded,
        );
        assert_eq!(row(&store, &f).state, FindingState::Accepted);
        import(
            &mut store,
            "shop",
            &[vec![other.clone()]],
            RunEnd::Succeeded,
        );
        assert_eq!(row(&store, &f).state, FindingState::Fixed);
        import(&mut store, "shop", &[both], RunEnd::Succeeded);
        let back = row(&store, &f);
        assert_eq!(back.state, FindingState::Accepted);
        assert_eq!(back.triage.reason.as_deref(), Some("behind the VPN"));
        assert_eq!(back.triage.by.as_deref(), Some("dana"));
        assert_eq!(back.triage.until.as_deref(), Some("2999-01-01"));
        assert_eq!(
            history(&store, &f),
            [
                ev("created", "new"),
                ev("state_set", "accepted"),
                ev("fixed", "fixed"),
                ev("returned", "accepted")
            ]
        );
        let set = &store.events_of(id).unwrap()[1];
        assert_eq!(
            (
                set.by.as_deref(),
                set.reason.as_deref(),
                set.until.as_deref()
            ),
            (Some("dana"), Some("behind the VPN"), Some("2999-01-01"))
        );
    }

    #[test]
    fn an_acceptance_whose_day_has_come_is_open_at_the_next_run_with_an_expired_event() {
        let (_dir, mut store) = temp_store();
        let f = finding(1);
        import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
        store
            .triage(id_of(&store, &f), &accept(Some("2020-01-01")))
            .unwrap();
        // Until a run lists it again, it stays accepted (and counts as expiring).
        assert_eq!(row(&store, &f).state, FindingState::Accepted);
        assert_eq!(store.acceptances_expiring("2020-01-08").unwrap()["shop"], 1);
        // A failed run that did not list it decides nothing.
        import(
            &mut store,
            "shop",
            &[],
            RunEnd::Failed("vendor down".into()),
        );
        assert_eq!(row(&store, &f).state, FindingState::Accepted);
        let run = import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
        let now = row(&store, &f);
        assert_eq!(now.state, FindingState::Open);
        assert_eq!(now.triage, Triage::default());
        let last = store.events_of(now.id).unwrap().pop().unwrap();
        assert_eq!(last.kind, "expired");
        assert_eq!(last.run_id, Some(run.id));
        assert_eq!(
            (last.old_value.as_deref(), last.new_value.as_deref()),
            (Some("accepted"), Some("open"))
        );
        assert_eq!(
            (last.by.as_deref(), last.until.as_deref()),
            (Some("dana"), Some("2020-01-01"))
        );
        assert!(store.acceptances_expiring("2020-01-08").unwrap().is_empty());
    }

    #[test]
    fn a_higher_severity_ends_an_acceptance_only_when_asked() {
        let (_dir, mut store) = temp_store();
        let (mut asked, mut not_asked) = (finding(11), finding(12));
        asked.severity = Severity::Low;
        not_asked.severity = Severity::Low;
        import(
            &mut store,
            "shop",
            &[vec![asked.clone(), not_asked.clone()]],
            RunEnd::Succeeded,
        );
        let mut req = accept(None);
        req.reopen_on_severity_increase = true;
        store.triage(id_of(&store, &asked), &req).unwrap();
        store
            .triage(id_of(&store, &not_asked), &accept(None))
            .unwrap();
        asked.severity = Severity::High;
        not_asked.severity = Severity::High;
        import(
            &mut store,
            "shop",
            &[vec![asked.clone(), not_asked.clone()]],
            RunEnd::Succeeded,
        );
        assert_eq!(row(&store, &asked).state, FindingState::Open);
        assert_eq!(row(&store, &not_asked).state, FindingState::Accepted);
        let kinds: Vec<String> = history(&store, &asked).into_iter().map(|e| e.0).collect();
        assert!(kinds.contains(&"escalated".to_string()), "{kinds:?}");
        assert!(kinds.contains(&"severity_changed".to_string()), "{kinds:?}");
    }

    #[test]
    fn a_rule_suppresses_at_import_loses_to_a_person_and_releases_when_removed() {
        let (_dir, mut store) = temp_store();
        let (f, g, plain) = (finding(20), finding(21), finding(22));
        let page = vec![f.clone(), g.clone(), plain.clone()];
        store.set_suppress_rules(vec![
            rule("fixtures", "Problem 20"),
            rule("more", "Problem 21"),
        ]);
        let first = import(
            &mut store,
            "shop",
            std::slice::from_ref(&page),
            RunEnd::Succeeded,
        );
        assert_eq!(first.counts.new, 3);
        let suppressed = row(&store, &f);
        assert_eq!(suppressed.state, FindingState::FalsePositive);
        assert_eq!(suppressed.triage.source, Some(TriageSource::Rule));
        assert_eq!(suppressed.triage.who().as_deref(), Some("rule:fixtures"));
        assert_eq!(
            history(&store, &f),
            [
                ev("created", "false_positive"),
                ev("suppressed", "false_positive")
            ]
        );
        assert_eq!(row(&store, &plain).state, FindingState::New);
        // A person's triage beats the rule; `open` on a rule's finding is refused.
        store.triage(id_of(&store, &g), &accept(None)).unwrap();
        let err = store
            .triage(id_of(&store, &f), &TriageRequest::default())
            .unwrap_err();
        assert!(err.to_string().contains("\"fixtures\""), "{err}");
        import(
            &mut store,
            "shop",
            std::slice::from_ref(&page),
            RunEnd::Succeeded,
        );
        assert_eq!(row(&store, &g).state, FindingState::Accepted);
        assert_eq!(row(&store, &g).triage.source, Some(TriageSource::Local));
        // Rules gone: the rule's finding is released at the next run; the person's stays.
        store.set_suppress_rules(Vec::new());
        import(&mut store, "shop", &[page], RunEnd::Succeeded);
        let released = row(&store, &f);
        assert_eq!(released.state, FindingState::Open);
        assert_eq!(released.triage, Triage::default());
        let last = store.events_of(released.id).unwrap().pop().unwrap();
        assert_eq!(
            (last.kind.as_str(), last.rule.as_deref()),
            ("released", Some("fixtures"))
        );
        assert_eq!(row(&store, &g).state, FindingState::Accepted);
    }

    #[test]
    fn a_rule_applies_to_an_open_finding_and_to_its_scan_only() {
        let (_dir, mut store) = temp_store();
        let f = finding(30);
        import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
        import(&mut store, "other", &[vec![f.clone()]], RunEnd::Succeeded);
        let mut r = rule("tests", "problem 30");
        r.state = SuppressState::Accepted;
        r.until = Some("2999-12-31".parse().unwrap());
        store.set_suppress_rules(vec![r]);
        import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
        import(&mut store, "other", &[vec![f.clone()]], RunEnd::Succeeded);
        let shop = row(&store, &f);
        assert_eq!(shop.state, FindingState::Accepted);
        assert_eq!(shop.triage.until.as_deref(), Some("2999-12-31"));
        let last = store.events_of(shop.id).unwrap().pop().unwrap();
        assert_eq!(
            (
                last.kind.as_str(),
                last.old_value.as_deref(),
                last.reason.as_deref()
            ),
            ("suppressed", Some("new"), Some("test fixtures"))
        );
        let other = store
            .findings(&FindingFilter {
                scans: vec!["other".into()],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(other[0].state, FindingState::Open);
    }

    #[test]
    fn a_rule_past_its_day_no_longer_applies_and_its_findings_expire() {
        let (_dir, mut store) = temp_store();
        let f = finding(40);
        let mut r = rule("old", "Problem 40");
        store.set_suppress_rules(vec![r.clone()]);
        import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
        assert_eq!(row(&store, &f).state, FindingState::FalsePositive);
        r.until = Some("2020-01-01".parse().unwrap());
        store.set_suppress_rules(vec![r]);
        import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
        assert_eq!(row(&store, &f).state, FindingState::Open);
        assert_eq!(history(&store, &f).last().unwrap().0, "released");
    }

    #[test]
    fn findings_are_found_by_id_by_fingerprint_prefix_and_ambiguity_is_explained() {
        let (_dir, mut store) = temp_store();
        let f = finding(5);
        import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
        let mut other_scan = scope("billing");
        other_scan.bind_to = "billing".into();
        let run = store.begin_run(&other_scan).unwrap();
        store.upsert_page(run, std::slice::from_ref(&f)).unwrap();
        store.finish_run(run, RunEnd::Succeeded).unwrap();
        let fp = f.fingerprint(0);
        let shop_id = store.resolve_finding(&fp, Some("shop")).unwrap();
        assert_eq!(
            store.resolve_finding(&shop_id.to_string(), None).unwrap(),
            shop_id
        );
        assert_eq!(
            store
                .resolve_finding(&fp[..8].to_uppercase(), Some("shop"))
                .unwrap(),
            shop_id
        );
        let err = store.resolve_finding(&fp[..10], None).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::AmbiguousFinding(_)), "{text}");
        assert!(
            text.contains("--scan") && text.contains("shop") && text.contains("billing"),
            "{text}"
        );
        let err = store.resolve_finding("abc", None).unwrap_err();
        assert!(err.to_string().contains("at least 8 hex"), "{err}");
        let err = store.resolve_finding("99999", None).unwrap_err();
        assert!(matches!(err, StoreError::NoSuchFinding(_)), "{err}");
    }

    #[test]
    fn a_repeated_identical_triage_writes_nothing_but_a_new_reason_is_an_event() {
        let (_dir, mut store) = temp_store();
        let f = finding(6);
        import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
        let id = id_of(&store, &f);
        store.triage(id, &accept(None)).unwrap();
        store.triage(id, &accept(None)).unwrap();
        assert_eq!(store.events_of(id).unwrap().len(), 2);
        let mut again = accept(None);
        again.reason = Some("the VPN is gone; WAF rule now".into());
        store.triage(id, &again).unwrap();
        let events = store.events_of(id).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[2].reason.as_deref(),
            Some("the VPN is gone; WAF rule now")
        );
    }
}
