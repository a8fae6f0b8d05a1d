//! Reading findings: listings, exports, counts for `/metrics` and thresholds, history.

use super::*;

/// Columns of a finding as [`finding_from_row`] reads them (`f` = findings, `s` = scans,
/// `i` = instances).
pub(super) const FINDING_COLUMNS: &str =
    "f.fingerprint, s.name, i.name, i.vendor, s.bind_to, f.state, \
     f.vendor_id, f.title, f.severity, f.vendor_status, f.cwe, f.owasp, f.rule_id, \
     f.location_kind, f.file_path, f.start_line, f.end_line, f.http_method, f.api_path, \
     f.api_host, f.description, f.remediation, f.vendor_url, f.vendor_first_seen, \
     f.vendor_last_seen, f.raw, f.first_seen, f.last_seen, f.times_seen, f.id, f.triage, \
     f.triage_source, f.triage_reason, f.triage_by, f.triage_until, f.triage_at, f.triage_rule, \
     f.reopen_on_severity_increase";

/// Severity words worst first, for `ORDER BY` (the words themselves do not sort).
pub(super) const SEVERITY_RANK_SQL: &str =
    "CASE f.severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 \
     WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END";

/// A location from the columns `location_kind, file_path, start_line, end_line, http_method,
/// api_path, api_host`, the first at index `first`.
pub(super) fn location_from_row(r: &Row<'_>, first: usize) -> db::Result<Location> {
    let text = |i: usize| -> db::Result<String> {
        Ok(r.get::<Option<String>>(first + i)?.unwrap_or_default())
    };
    Ok(match r.get::<String>(first)?.as_str() {
        "code" => Location::Code {
            path: text(1)?,
            start_line: r.get(first + 2)?,
            end_line: r.get(first + 3)?,
        },
        "api" => Location::Api {
            method: text(4)?,
            path: text(5)?,
            host: text(6)?,
        },
        _ => Location::Unknown,
    })
}

pub(super) fn finding_from_row(r: &Row<'_>) -> Result<FindingRow, StoreError> {
    let severity_word: String = r.get(8)?;
    let location = location_from_row(r, 13)?;
    Ok(FindingRow {
        fingerprint: r.get(0)?,
        scan: r.get(1)?,
        instance: r.get(2)?,
        vendor: r.get(3)?,
        bind_to: r.get(4)?,
        state: FindingState::parse(&r.get::<String>(5)?)?,
        finding: Finding {
            vendor_id: r.get(6)?,
            title: r.get(7)?,
            severity: severity_word
                .parse()
                .map_err(|_| unknown_word("severity", &severity_word))?,
            vendor_status: r.get(9)?,
            cwe: r.get(10)?,
            owasp: r.get(11)?,
            rule_id: r.get(12)?,
            location,
            description: r.get(20)?,
            remediation: r.get(21)?,
            vendor_url: r.get(22)?,
            vendor_first_seen: r.get(23)?,
            vendor_last_seen: r.get(24)?,
            raw: r.get(25)?,
            verdict: None,
        },
        first_seen: r.get(26)?,
        last_seen: r.get(27)?,
        times_seen: r.get::<i64>(28)? as u64,
        id: r.get(29)?,
        triage: triage::triage_from_row(r, 30)?,
    })
}

impl Store {
    /// Streams findings matching `filter` to `f`, worst severity first, then by scan and
    /// fingerprint, without holding them all in memory (exports of large stores).
    pub fn for_each_finding<E: From<StoreError>>(
        &self,
        filter: &FindingFilter,
        mut f: impl FnMut(FindingRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut conditions = Vec::new();
        let mut args: Vec<&str> = Vec::new();
        let mut any_of = |column: &str, words: Vec<&'static str>, args: &mut Vec<&str>| {
            let marks = vec!["?"; words.len()].join(", ");
            conditions.push(format!("{column} IN ({marks})"));
            args.extend(words);
        };
        if !filter.states.is_empty() {
            any_of(
                "f.state",
                filter.states.iter().map(|s| s.as_str()).collect(),
                &mut args,
            );
        }
        if let Some(min) = filter.min_severity {
            any_of(
                "f.severity",
                Severity::ALL
                    .iter()
                    .filter(|s| **s >= min)
                    .map(|s| s.as_str())
                    .collect(),
                &mut args,
            );
        }
        if !filter.ids.is_empty() {
            let ids: Vec<String> = filter.ids.iter().map(i64::to_string).collect();
            conditions.push(format!("f.id IN ({})", ids.join(", ")));
        }
        if !filter.fingerprints.is_empty() {
            let any: Vec<String> = filter
                .fingerprints
                .iter()
                .map(|p| format!("substr(f.fingerprint, 1, {}) = ?", p.chars().count()))
                .collect();
            conditions.push(format!("({})", any.join(" OR ")));
            args.extend(filter.fingerprints.iter().map(String::as_str));
        }
        if !filter.scans.is_empty() {
            let marks = vec!["?"; filter.scans.len()].join(", ");
            conditions.push(format!("s.name IN ({marks})"));
            args.extend(filter.scans.iter().map(String::as_str));
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM findings f
             JOIN scans s ON s.id = f.scan_id
             JOIN instances i ON i.id = s.instance_id
             {where_clause}
             ORDER BY {SEVERITY_RANK_SQL} DESC, s.name, f.fingerprint"
        );
        /// The store's error or the caller's, apart until the end.
        enum Stop<E> {
            Store(StoreError),
            Caller(E),
        }
        impl<E> From<db::Error> for Stop<E> {
            fn from(e: db::Error) -> Self {
                Stop::Store(e.into())
            }
        }
        self.conn
            .for_each_row(&sql, db::params_from_iter(&args), |row| {
                let finding = finding_from_row(row).map_err(Stop::Store)?;
                f(finding).map_err(Stop::Caller)
            })
            .map_err(|stop| match stop {
                Stop::Store(e) => E::from(e),
                Stop::Caller(e) => e,
            })
    }

    /// [`Store::for_each_finding`] collected, for callers that want them all at once.
    pub fn findings(&self, filter: &FindingFilter) -> Result<Vec<FindingRow>, StoreError> {
        let mut out = Vec::new();
        self.for_each_finding(filter, |row| {
            out.push(row);
            Ok::<_, StoreError>(())
        })?;
        Ok(out)
    }

    /// Open findings (`new`, `open`, `reopened`, and `missing`: a held fix is not a fix yet) of
    /// a scan by severity, every severity present (zero when none), for `scan` thresholds and
    /// summaries.
    pub fn open_by_severity(&self, scan: &str) -> Result<BTreeMap<Severity, u64>, StoreError> {
        let mut out: BTreeMap<Severity, u64> = Severity::ALL.iter().map(|s| (*s, 0)).collect();
        let scan_id: Option<i64> = self
            .conn
            .prepare_cached("SELECT id FROM scans WHERE name = ?1")?
            .query_row(params![scan], |r| r.get(0))
            .optional()?;
        let Some(scan_id) = scan_id else {
            return Ok(out);
        };
        let scan_rows = ScanRows::of(&self.conn, scan_id)?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT severity, count(*) FROM findings
             WHERE {} AND state IN ('new', 'open', 'reopened', 'missing')
             GROUP BY severity",
            scan_rows.sql("?1", "?2", "?3")
        ))?;
        let mut rows = stmt.query(params![scan_id, scan_rows.first, scan_rows.last])?;
        while let Some(row) = rows.next()? {
            let word: String = row.get(0)?;
            let severity = word
                .parse::<Severity>()
                .map_err(|_| unknown_word("severity", &word))?;
            out.insert(severity, row.get::<i64>(1)? as u64);
        }
        Ok(out)
    }

    /// Every scan in the store with its findings counted by state and severity (a scan with
    /// no findings maps to an empty table), for the metrics endpoint's gauges. One grouped
    /// query, so a scrape costs one pass over the findings, not one per series.
    ///
    /// `NOT INDEXED`: no index covers (scan, state, severity) — one would slow every page
    /// import to speed up a scrape — and a sequential pass over the table is measured ~2–3×
    /// faster than walking it through the (scan_id, fingerprint) index, which SQLite would
    /// otherwise pick (0.2 s against 0.5 s for 300,000 findings).
    pub fn finding_counts(&self) -> Result<BTreeMap<String, FindingCounts>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.name, c.state, c.severity, c.n
             FROM scans s LEFT JOIN (
                 SELECT scan_id, state, severity, count(*) AS n
                 FROM findings NOT INDEXED
                 GROUP BY scan_id, state, severity
             ) c ON c.scan_id = s.id",
        )?;
        let mut rows = stmt.query([])?;
        let mut out: BTreeMap<String, FindingCounts> = BTreeMap::new();
        while let Some(row) = rows.next()? {
            let scan: String = row.get(0)?;
            let counts = out.entry(scan).or_default();
            let (Some(state), Some(severity)) =
                (row.get::<Option<String>>(1)?, row.get::<Option<String>>(2)?)
            else {
                continue;
            };
            let state = FindingState::parse(&state)?;
            let severity = severity
                .parse::<Severity>()
                .map_err(|_| unknown_word("severity", &severity))?;
            counts.insert((state, severity), row.get::<i64>(3)? as u64);
        }
        Ok(out)
    }

    /// When each scan last finished a successful run (RFC 3339 UTC), for scans that ever had
    /// one.
    pub fn last_successful_syncs(&self) -> Result<BTreeMap<String, String>, StoreError> {
        self.last_run_ends("state = 'succeeded'")
    }

    /// When each scan last finished a failed or timed-out run (RFC 3339 UTC), for scans that
    /// ever had one. With [`Store::last_successful_syncs`] it says whether a scan's runs fail,
    /// its very first run included, which a counter cannot say: its series appears at its
    /// first increment, so that increment is never seen as one.
    pub fn last_failed_syncs(&self) -> Result<BTreeMap<String, String>, StoreError> {
        self.last_run_ends("state IN ('failed', 'timed_out')")
    }

    /// The latest `finished_at` per scan of the runs `which` selects. Times are stored with
    /// fixed-width milliseconds, so the text maximum is the latest.
    fn last_run_ends(&self, which: &'static str) -> Result<BTreeMap<String, String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT scan, max(finished_at) FROM sync_runs
             WHERE {which} AND finished_at IS NOT NULL
             GROUP BY scan"
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When each scan's row was made (RFC 3339 UTC): when its first run started. For a scan
    /// that never succeeded, the time its lack of success is counted from.
    pub fn scans_created(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, created_at FROM scans")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sets a person's verdict on a finding, by scan and fingerprint, without a reason
    /// (tests and scripts; `scansync triage` uses [`Store::triage`]).
    pub fn set_local_state(
        &mut self,
        scan: &str,
        fingerprint: &str,
        state: FindingState,
    ) -> Result<(), StoreError> {
        let id = self.resolve_finding(fingerprint, Some(scan))?;
        self.triage(
            id,
            &TriageRequest {
                state,
                ..TriageRequest::default()
            },
        )?;
        Ok(())
    }

    /// A finding's history, oldest first, by scan and fingerprint.
    pub fn events(&self, scan: &str, fingerprint: &str) -> Result<Vec<FindingEvent>, StoreError> {
        let id: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT f.id FROM findings f JOIN scans s ON s.id = f.scan_id
                 WHERE s.name = ?1 AND f.fingerprint = ?2",
            )?
            .query_row(params![scan, fingerprint], |r| r.get(0))
            .optional()?;
        match id {
            Some(id) => self.events_of(id),
            None => Ok(Vec::new()),
        }
    }
}
