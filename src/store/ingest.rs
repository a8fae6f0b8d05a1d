//! The page import (the hot path: one upsert per finding, events by triggers) and the fix
//! of what a complete run did not list, under the mass-fix guard.

use super::*;
use db::Param;

/// The page import: one statement per finding (`?25` = the vendor's verdict word or NULL,
/// `?27` = the run is older than the scan's newest successful run: what it finds that the
/// store lacks, the newer complete listing lacked, so it is stored as already fixed; and
/// what that listing found absent (fixed or missing) it leaves so; `?28`…`?31` = the
/// suppression rule that matches the finding, if any: its state, name, reason and until).
///
/// It returns the row's state when it inserted or updated one (what `listed_present` counts).
///
/// The `WHERE` makes the update a no-op on a row that this run, or a newer one, already saw or
/// decided (`touched_run_id`): a repeated page changes nothing, and an older run adopted
/// late never overwrites what a newer run decided. A no-op tells the caller to look closer
/// (a second finding with the same identity, see [`Finding::fingerprint`]).
///
/// It is also a no-op, given `?32` (the next occurrence's fingerprint), where two findings
/// of one identity would trade states: a finding the vendor lists open does not take a
/// `fixed` row while the next occurrence's row is present and not yet seen by this run, nor
/// one it calls resolved a present row while that next row is fixed; nor either one while
/// the next row holds this very sighting already (a page sent again after it passed over);
/// the caller goes on to the next occurrence. Placed by order alone, a listing that dropped
/// the resolved one of two findings (or only changed their order) would reopen its row with
/// the other one and fix the other one's row, which the vendor still lists. It looks one
/// occurrence ahead only: three findings of one identity, two of them fixed, can still trade.
///
/// The state of a listed finding: the vendor's "resolved" word fixes it; a person's triage
/// holds (and is what a fixed or missing finding returns to) until its `until` day comes or,
/// when asked, the severity rises above the one accepted; then a matching suppression rule's
/// triage; then the vendor's false positive or accepted word; otherwise a fixed finding is
/// `reopened` and any other is `open` (a vendor verdict withdrawn, or a rule removed,
/// included). The triggers `finding_listed_state_changed` and `finding_listed_triage_changed`
/// write the event of each change.
pub(super) static UPSERT_FINDING_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| {
        let rank = |col: &str| {
            format!(
                "(CASE {col} WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 \
             WHEN 'low' THEN 1 ELSE 0 END)"
            )
        };
        // Whether row `n` (of the same identity) holds this very sighting: as
        // `Finding::same_sighting` (the same vendor id when both have one, else the same
        // lines when neither has).
        let same_sighting = "CASE WHEN n.vendor_id IS NOT NULL AND excluded.vendor_id IS NOT NULL
                    THEN n.vendor_id = excluded.vendor_id
                  WHEN n.vendor_id IS NULL AND excluded.vendor_id IS NULL
                    THEN (n.start_line = excluded.start_line
                          OR (n.start_line IS NULL AND excluded.start_line IS NULL))
                     AND (n.end_line = excluded.end_line
                          OR (n.end_line IS NULL AND excluded.end_line IS NULL))
                  ELSE FALSE END";
        // Whether a person's triage still holds for this sighting.
        let local = format!(
            "(findings.triage_source = 'local'
          AND (findings.triage_until IS NULL OR findings.triage_until > excluded.last_seen)
          AND NOT (findings.reopen_on_severity_increase <> 0
                   AND {} > {}))",
            rank("excluded.severity"),
            rank("coalesce(findings.triage_severity, findings.severity)")
        );
        let keep = |col: &str| {
            format!("    {col} = CASE WHEN {local} THEN findings.{col} ELSE excluded.{col} END,\n")
        };
        // When and at what severity a triage began stay while the same triage goes on.
        let since = |col: &str| {
            format!(
                "    {col} = CASE WHEN {local} THEN findings.{col}
                 WHEN excluded.triage IS findings.triage
                      AND excluded.triage_source IS findings.triage_source
                      AND excluded.triage_rule IS findings.triage_rule THEN findings.{col}
                 ELSE excluded.{col} END,\n"
            )
        };
        let mut triage_columns: String = [
            "triage",
            "triage_source",
            "triage_reason",
            "triage_by",
            "triage_until",
            "triage_rule",
            "reopen_on_severity_increase",
        ]
        .iter()
        .map(|c| keep(c))
        .collect();
        triage_columns.push_str(&since("triage_at"));
        triage_columns.push_str(&since("triage_severity"));
        format!(
            "
INSERT INTO findings (
    scan_id, fingerprint, state, title, severity, vendor_status, cwe, owasp, rule_id,
    location_kind, file_path, start_line, end_line, http_method, api_path, api_host,
    description, remediation, vendor_url, vendor_id, vendor_first_seen, vendor_last_seen, raw,
    first_seen, last_seen, times_seen, last_run_id, vendor_verdict, triage, triage_source,
    fingerprint_version, touched_run_id, triage_reason, triage_until, triage_at, triage_rule,
    triage_severity)
VALUES (?1, ?2,
        CASE WHEN ?27 THEN 'fixed'
             WHEN ?25 = 'resolved' THEN 'fixed'
             WHEN CAST(?28 AS TEXT) IS NOT NULL THEN ?28
             ELSE CASE ?25 WHEN 'false_positive' THEN 'false_positive'
                           WHEN 'accepted' THEN 'accepted' ELSE 'new' END END,
        ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
        ?18, ?19, ?20, ?21, ?22, ?23, ?23, 1, ?24, ?25,
        CASE WHEN ?28 IS NOT NULL THEN ?28
             WHEN ?25 = 'false_positive' OR ?25 = 'accepted' THEN ?25 END,
        CASE WHEN ?28 IS NOT NULL THEN 'rule'
             WHEN ?25 = 'false_positive' OR ?25 = 'accepted' THEN 'vendor' END,
        ?26, ?24,
        CASE WHEN ?28 IS NOT NULL THEN ?30 END,
        CASE WHEN ?28 IS NOT NULL THEN ?31 END,
        CASE WHEN ?28 IS NOT NULL OR ?25 = 'false_positive' OR ?25 = 'accepted' THEN ?23 END,
        CASE WHEN ?28 IS NOT NULL THEN ?29 END,
        CASE WHEN ?28 IS NOT NULL OR ?25 = 'false_positive' OR ?25 = 'accepted' THEN ?4 END)
ON CONFLICT (scan_id, fingerprint) DO UPDATE SET
    state = CASE
                WHEN ?27 AND (findings.state = 'fixed' OR findings.state = 'missing')
                    THEN findings.state
                WHEN excluded.vendor_verdict = 'resolved' THEN 'fixed'
                WHEN {local} THEN findings.triage
                WHEN excluded.triage IS NOT NULL THEN excluded.triage
                WHEN findings.state = 'fixed' THEN 'reopened'
                ELSE 'open'
            END,
{triage_columns}    title = excluded.title,
    severity = excluded.severity,
    vendor_status = excluded.vendor_status,
    cwe = excluded.cwe,
    owasp = excluded.owasp,
    rule_id = excluded.rule_id,
    location_kind = excluded.location_kind,
    file_path = excluded.file_path,
    start_line = excluded.start_line,
    end_line = excluded.end_line,
    http_method = excluded.http_method,
    api_path = excluded.api_path,
    api_host = excluded.api_host,
    description = excluded.description,
    remediation = excluded.remediation,
    vendor_url = excluded.vendor_url,
    vendor_id = excluded.vendor_id,
    vendor_first_seen = excluded.vendor_first_seen,
    vendor_last_seen = excluded.vendor_last_seen,
    raw = excluded.raw,
    last_seen = excluded.last_seen,
    times_seen = findings.times_seen + 1,
    last_run_id = excluded.last_run_id,
    vendor_verdict = excluded.vendor_verdict,
    fingerprint_version = excluded.fingerprint_version,
    touched_run_id = excluded.touched_run_id
WHERE findings.touched_run_id < excluded.touched_run_id
  AND NOT (CAST(?32 AS TEXT) IS NOT NULL
           AND (CASE WHEN findings.state = 'fixed' THEN 1 ELSE 0 END)
               <> (CASE WHEN excluded.vendor_verdict = 'resolved' THEN 1 ELSE 0 END)
           AND EXISTS (SELECT 1 FROM findings n
                       WHERE n.scan_id = findings.scan_id AND n.fingerprint = ?32
                         AND ((n.touched_run_id < excluded.touched_run_id
                               AND (CASE WHEN n.state = 'fixed' THEN 1 ELSE 0 END)
                                   = (CASE WHEN excluded.vendor_verdict = 'resolved'
                                           THEN 1 ELSE 0 END))
                              OR (n.touched_run_id = excluded.touched_run_id
                                  AND {same_sighting}))))
RETURNING state"
        )
    });

/// [`UPSERT_FINDING_SQL`] for many findings in one statement, on PostgreSQL (see
/// [`upsert_rows_batched`]): the same expressions over the rows of `unnest` of one list per
/// column, in order. The run's values (`?1`, `?23`, `?24`, `?26`, `?27` there) are `?1`…`?5`
/// here, and the list of each finding's `?N` there ([`BATCH_COLUMNS`]) the following ones.
/// Made from [`UPSERT_FINDING_SQL`]'s text, so the two cannot drift apart. It also writes
/// the [`CREATED_EVENTS`] of the rows it inserted (ids above `?33`, the largest before the
/// page: the write lock keeps other writers out), from the rows it returns rather than a
/// second read of them (a twentieth of a PostgreSQL ingest), and answers one row: the rows
/// it inserted or updated, how many of them are present, and how many it inserted.
///
/// Those events get their ids before the triggers' events of the rows the statement
/// updated (written at its end), where one statement per finding writes them after: the
/// order of one finding's events is the same either way, and nothing reads the events of
/// different findings in id order.
pub(super) static UPSERT_ROWS_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let single = UPSERT_FINDING_SQL.as_str();
    let (insert, rest) = single
        .split_once("\nVALUES (")
        .expect("the upsert has a VALUES list");
    let (values, conflict) = rest
        .split_once(")\nON CONFLICT")
        .expect("the VALUES list ends before ON CONFLICT");
    let spell = |n: u32| match n {
        1 => "?1".to_owned(),
        23 => "?2".to_owned(),
        24 => "?3".to_owned(),
        26 => "?4".to_owned(),
        27 => "?5".to_owned(),
        // The trade of states is the plan's (`plan_page`): the conflict clause sees no `u`.
        32 => "NULL".to_owned(),
        n => format!("u.c{n}"),
    };
    let lists: Vec<String> = BATCH_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| format!("CAST(?{} AS {ty}[])", i + 6))
        .collect();
    let names: Vec<String> = BATCH_COLUMNS.iter().map(|(n, _)| format!("c{n}")).collect();
    let conflict = conflict
        .strip_suffix("RETURNING state")
        .expect("the upsert returns the row's state");
    format!(
        "WITH up AS ({insert}\nSELECT {}\nFROM unnest({}) WITH ORDINALITY AS u({}, ord)
ORDER BY u.ord\nON CONFLICT{}RETURNING id, state, first_seen, last_run_id),
created AS ({CREATED_EVENTS} FROM up WHERE id > ?{} ORDER BY id RETURNING 1)
SELECT count(*), count(*) FILTER (WHERE state <> 'fixed'), (SELECT count(*) FROM created)
FROM up",
        renumber(values, spell),
        lists.join(", "),
        names.join(", "),
        renumber(conflict, spell),
        BATCH_COLUMNS.len() + 6
    )
});

/// One `created` event per row a page created (`… FROM <the rows> WHERE <they were created>
/// ORDER BY id`), first among the page's events of that row (a row is updated at most once
/// per run, so its state is still the one it was created with). One statement per page
/// rather than a trigger per row: the hot path.
const CREATED_EVENTS: &str =
    "INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at)
     SELECT id, last_run_id, 'created', NULL, state, first_seen";

/// The per-finding placeholders of [`UPSERT_FINDING_SQL`] and their types, in the order of
/// [`batch_row`].
const BATCH_COLUMNS: [(u32, &str); 26] = [
    (2, "TEXT"),
    (3, "TEXT"),
    (4, "TEXT"),
    (5, "TEXT"),
    (6, "TEXT"),
    (7, "TEXT"),
    (8, "TEXT"),
    (9, "TEXT"),
    (10, "TEXT"),
    (11, "BIGINT"),
    (12, "BIGINT"),
    (13, "TEXT"),
    (14, "TEXT"),
    (15, "TEXT"),
    (16, "TEXT"),
    (17, "TEXT"),
    (18, "TEXT"),
    (19, "TEXT"),
    (20, "TEXT"),
    (21, "TEXT"),
    (22, "TEXT"),
    (25, "TEXT"),
    (28, "TEXT"),
    (29, "TEXT"),
    (30, "TEXT"),
    (31, "TEXT"),
];

/// `sql` with each placeholder `?N` outside quotes spelled `spell(N)`.
fn renumber(sql: &str, spell: impl Fn(u32) -> String) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    let mut quoted = false;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        if c == '\'' {
            quoted = !quoted;
        }
        if c != '?' || quoted {
            out.push(c);
            continue;
        }
        let digits = rest.len() - rest.trim_start_matches(|d: char| d.is_ascii_digit()).len();
        let number = rest[..digits].parse().expect("numbered placeholders only");
        out.push_str(&spell(number));
        rest = &rest[digits..];
    }
    out
}

/// States a complete listing can find absent (everything but `fixed`).
pub(super) const PRESENT_STATES_SQL: &str =
    "(state = 'new' OR state = 'open' OR state = 'reopened' \
     OR state = 'missing' OR state = 'false_positive' OR state = 'accepted')";

/// How a statement over all of one scan's findings visits them (`finish_run` finding the
/// unseen ones, `open_by_severity`).
///
/// Why: the only index that names the scan is the dedup key (scan, fingerprint), and a walk
/// along it visits rows in fingerprint order, which is random order in the table: at a
/// million findings, one random page read per row (3 s where a sequential scan takes 0.4 s).
/// A scan's rows were mostly inserted together, so their ids usually form a dense range;
/// then the range is read in id order, and only a scan whose rows are spread thinly over a
/// much larger table (a small scan beside a big one) walks the index.
pub(super) struct ScanRows {
    pub(super) first: i64,
    pub(super) last: i64,
    /// Whether the id range is dense enough to read sequentially.
    pub(super) by_range: bool,
}

impl ScanRows {
    /// A sequential read of the range beats the index walk unless the range holds several
    /// times more rows than the scan has (a random read costs about seven sequential ones).
    const MAX_SPREAD: i64 = 4;

    /// Reads the scan's row count and id bounds (from the dedup index alone, no table reads).
    pub(super) fn of(conn: &Db, scan_id: i64) -> Result<ScanRows, StoreError> {
        let (count, first, last): (i64, Option<i64>, Option<i64>) = conn
            .prepare_cached("SELECT count(*), min(id), max(id) FROM findings WHERE scan_id = ?1")?
            .query_row(params![scan_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(ScanRows::from_bounds(count, first, last))
    }

    /// The access path for a scan of `count` rows with ids from `first` to `last`.
    fn from_bounds(count: i64, first: Option<i64>, last: Option<i64>) -> ScanRows {
        let (first, last) = (first.unwrap_or(0), last.unwrap_or(-1));
        ScanRows {
            first,
            last,
            by_range: last - first < count.saturating_mul(Self::MAX_SPREAD),
        }
    }

    /// The `WHERE` terms selecting the scan's rows, given the parameter names of the scan id
    /// and the two bounds. The unary `+` keeps the query planner off the other access path.
    pub(super) fn sql(&self, scan: &str, first: &str, last: &str) -> String {
        self.sql_on("", scan, first, last)
    }

    /// [`ScanRows::sql`] for a query that names `findings` by an alias (`"f."`).
    pub(super) fn sql_on(&self, alias: &str, scan: &str, first: &str, last: &str) -> String {
        if self.by_range {
            format!("{alias}id BETWEEN {first} AND {last} AND +{alias}scan_id = {scan}")
        } else {
            format!("{alias}scan_id = {scan} AND +{alias}id BETWEEN {first} AND {last}")
        }
    }
}

/// Written after `id > ?N` (the rows a page wrote, past the largest id before it): changes
/// nothing, but tells PostgreSQL's planner a narrow range. `id > ?N` alone is estimated at a
/// third of the table without statistics (a store's first big import, before autoanalyze)
/// and in a generic plan, and then each page read the whole `findings` or `finding_events`
/// table: quadratic (BENCHMARKS.md, PostgreSQL). A closed range is read through the primary
/// key; SQLite reads the rowid range either way.
pub(super) const ID_CEILING: &str = "id <= 9223372036854775807";

/// A finding first seen on a branch scope (`name@branch`) that a person triaged on the scan
/// itself (`name`, same fingerprint) starts with that triage: the same finding, judged
/// once, must not fail a feature branch's CI threshold. Only at creation: a triage set on
/// the branch later is the branch's own. The `state_set` event says whose triage it is.
pub(super) fn inherit_branch_triage(
    conn: &Db,
    ctx: &RunContext,
    run: RunId,
) -> Result<(), StoreError> {
    let Some((base, _)) = ctx.scan.split_once('@') else {
        return Ok(());
    };
    let created_here = format!(
        "SELECT finding_id FROM finding_events
         WHERE id > ?3 AND {ID_CEILING} AND kind = 'created' AND new_value = 'new'"
    );
    let inherited = conn
        .prepare_cached(&format!(
            "UPDATE findings SET state = b.triage, triage = b.triage, triage_source = 'local',
                 triage_reason = b.triage_reason, triage_by = b.triage_by,
                 triage_until = b.triage_until, triage_at = b.triage_at,
                 triage_severity = b.triage_severity,
                 reopen_on_severity_increase = b.reopen_on_severity_increase
             FROM findings b JOIN scans bs ON bs.id = b.scan_id
             WHERE bs.name = ?1 AND b.fingerprint = findings.fingerprint
               AND b.triage_source = 'local' AND b.triage IS NOT NULL
               AND findings.scan_id = ?2 AND findings.id IN ({created_here})"
        ))?
        .execute(params![base, ctx.scan_id, ctx.events_before])?;
    if inherited > 0 {
        conn.prepare_cached(&format!(
            "INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at,
                 actor, reason, until)
             SELECT id, ?1, 'state_set', 'new', triage, last_seen, triage_by, triage_reason,
                    triage_until
             FROM findings
             WHERE scan_id = ?2 AND triage_source = 'local' AND id IN ({created_here})
             ORDER BY id"
        ))?
        .execute(params![run, ctx.scan_id, ctx.events_before])?;
    }
    Ok(())
}

/// How long a scan's `present_count` is taken as exact after it was last counted (the
/// scan's creation, or a pass of [`fix_absent`]): a count made wrong behind the store's back
/// (rows written by hand, or by a node still on a scansync before schema 9) could let a
/// complete run skip the pass that would fix what it lacks; past this age the pass runs and
/// counts again.
const PRESENT_COUNT_TRUSTED_FOR: chrono::Duration = chrono::Duration::hours(24);

/// The end of a complete run: the scan's present findings this run did not list become
/// `fixed`, or `missing` when the guard trips (see [`Store::finish_run`]). Returns
/// `(fixed, missing)`.
///
/// A run that listed as many present findings as the scan has (each row counts once per
/// run) listed all of them: nothing is absent, and the pass over the scan's rows, a tenth
/// of a re-sync, is skipped while the scan's count is recent. Only for the scan's newest
/// run: no older run changes a row a newer one listed (`touched_run_id`), but a newer run
/// may have fixed one. The pass counts the present rows again and keeps the count.
pub(super) fn fix_absent(
    conn: &Db,
    ctx: &RunContext,
    run: RunId,
    at: &str,
) -> Result<(u64, u64), StoreError> {
    // Not from the future either: a node whose clock runs ahead would stretch the day.
    let until = chrono::Utc::now();
    let trusted_since = stamp(until - PRESENT_COUNT_TRUSTED_FOR);
    let until = stamp(until);
    let recent = ctx
        .present_checked_at
        .as_deref()
        .is_some_and(|checked| checked > trusted_since.as_str() && checked <= until.as_str());
    if recent && !ctx.newer_run && ctx.listed_present == ctx.present_count {
        return Ok((0, 0));
    }
    #[cfg(test)]
    FIX_PASSES.with(|n| n.set(n.get() + 1));
    let (present, fixed, missing) = fix_absent_rows(conn, ctx, run, at)?;
    if present != ctx.present_count {
        tracing::warn!(
            scan = %ctx.scan,
            counted = ctx.present_count,
            present,
            "the scan's count of present findings did not match its rows (rows written behind \
             the store's back, or by an older scansync); counted again"
        );
    }
    conn.prepare_cached(
        "UPDATE scans SET present_count = ?2, present_checked_at = ?3 WHERE id = ?1",
    )?
    .execute(params![ctx.scan_id, present - fixed as i64, at])?;
    Ok((fixed, missing))
}

/// The pass of [`fix_absent`]: `(present, fixed, missing)`, `present` being the scan's
/// present rows before it.
fn fix_absent_rows(
    conn: &Db,
    ctx: &RunContext,
    run: RunId,
    at: &str,
) -> Result<(i64, u64, u64), StoreError> {
    let (rows, present, absent, absent_missing) = if conn.backend() == db::Backend::Postgres {
        // One pass over the scan's rows rather than two: PostgreSQL reads each row for the
        // count of the first too (no index-only scans before a vacuum), and its planner picks
        // the access path without help.
        let (count, first, last, present, absent, absent_missing) = conn
            .prepare_cached(&format!(
                "SELECT count(*), min(id), max(id), count(*) FILTER (WHERE {PRESENT_STATES_SQL}),
                        count(*) FILTER (WHERE {PRESENT_STATES_SQL} AND last_run_id < ?2),
                        count(*) FILTER (WHERE state = 'missing' AND last_run_id < ?2)
                 FROM findings WHERE scan_id = ?1"
            ))?
            .query_row(params![ctx.scan_id, run], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
        (
            ScanRows::from_bounds(count, first, last),
            present,
            absent,
            absent_missing,
        )
    } else {
        let rows = ScanRows::of(conn, ctx.scan_id)?;
        let (present, absent, absent_missing): (i64, i64, i64) = conn
            .prepare_cached(&format!(
                "SELECT count(*), count(*) FILTER (WHERE last_run_id < ?2),
                        count(*) FILTER (WHERE last_run_id < ?2 AND state = 'missing')
                 FROM findings WHERE {} AND {PRESENT_STATES_SQL}",
                rows.sql("?1", "?3", "?4")
            ))?
            .query_row(params![ctx.scan_id, run, rows.first, rows.last], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        (rows, present, absent, absent_missing)
    };
    let in_scan = rows.sql("?1", "?3", "?4");
    // The share is of what the scan had before this run: a listing that swaps every known
    // finding for others (another project's answer) must not dilute its own absences. Rows
    // it created already fixed (resolved at the vendor) were never counted as present.
    // Nor do rows it brought back from `fixed` (reopened, or returned to their triage):
    // absent before this run, they cannot dilute the absences of what was there.
    let created: i64 = conn
        .prepare_cached(
            "SELECT count(DISTINCT finding_id) FROM finding_events
             WHERE run_id = ?1 AND new_value != 'fixed'
               AND (kind = 'created' OR old_value = 'fixed')",
        )?
        .query_row(params![run], |r| r.get(0))?;
    let counted = present;
    let present = (present - created).max(0) as u64;
    let absent = absent as u64;
    if absent == 0 {
        return Ok((counted, 0, 0));
    }
    let tripped = ctx.fix_guard < 1.0
        && (absent == present
            || (present > FIX_GUARD_MIN_FINDINGS
                && absent as f64 > ctx.fix_guard * present as f64));
    // Findings already missing are fixed by this second absence; with the guard tripped the
    // others are held as missing, else they are fixed too. Events first, while the rows
    // still show their old state, in the findings' order: PostgreSQL would otherwise write
    // them in whatever order its heap holds the rows, which updates shuffle.
    let change = |to: &str, which: &str| -> Result<u64, StoreError> {
        let condition = format!("{in_scan} AND last_run_id < ?2 AND {which}");
        conn.prepare_cached(&format!(
            "INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at)
             SELECT id, ?2, ?5, state, ?5, ?6 FROM findings WHERE {condition} ORDER BY id"
        ))?
        .execute(params![ctx.scan_id, run, rows.first, rows.last, to, at])?;
        Ok(conn
            .prepare_cached(&format!(
                "UPDATE findings SET state = ?5, touched_run_id = ?2 WHERE {condition}"
            ))?
            .execute(params![ctx.scan_id, run, rows.first, rows.last, to])? as u64)
    };
    if tripped {
        let fixed = change("fixed", "state = 'missing'")?;
        let missing = change(
            "missing",
            "(state = 'new' OR state = 'open' OR state = 'reopened' \
             OR state = 'false_positive' OR state = 'accepted')",
        )?;
        tracing::warn!(
            run_id = run,
            missing,
            present,
            "this complete listing lacks {absent} of the scan's {present} findings \
             (guard: {:.0} %): they are marked missing and become fixed only if the next \
             complete run lacks them too",
            ctx.fix_guard * 100.0
        );
        debug_assert_eq!(fixed, absent_missing as u64);
        Ok((counted, fixed, missing))
    } else {
        Ok((counted, change("fixed", PRESENT_STATES_SQL)?, 0))
    }
}

/// The body of [`Store::upsert_page`], inside the caller's transaction (tests drop that
/// transaction half way to show a page is all or nothing). `None` when the page must be
/// written again in a new transaction, planned with more care (see
/// [`upsert_rows_batched`]): this one has changes to undo.
pub(super) fn upsert_page_in(
    conn: &Db,
    ctx: &RunContext,
    run: RunId,
    page: &[Finding],
    rules: &[crate::config::SuppressRule],
    looked_up: &mut LookedUpRuns,
) -> Result<Option<RunCounts>, StoreError> {
    let at = now();
    // The rules for this scan still in force; a finding takes the first that matches.
    let rules: Vec<&crate::config::SuppressRule> = rules
        .iter()
        .filter(|r| r.covers_scan(&ctx.scan) && r.active_at(&at))
        .collect();
    let rows: Vec<(&Finding, UpsertContext<'_>)> = page
        .iter()
        .map(|finding| {
            let up = UpsertContext {
                scan_id: ctx.scan_id,
                run,
                at: &at,
                stale: ctx.newer_success,
                rule: rules.iter().find(|r| r.matches(finding)).copied(),
            };
            (finding, up)
        })
        .collect();
    let suppressed_any = rows.iter().any(|(_, up)| up.rule.is_some());
    // On a server one round trip per finding is most of a page's time (BENCHMARKS.md).
    let batched = conn.backend() == db::Backend::Postgres && !one_by_one();
    let listed = if batched && !looked_up.one_by_one.contains(&run) {
        match upsert_rows_batched(conn, &rows, ctx.findings_before, looked_up)? {
            Some(listed) => listed,
            None => return Ok(None),
        }
    } else {
        looked_up.one_by_one.remove(&run);
        upsert_rows(conn, &rows)?
    };
    // The batched upsert wrote its rows' `created` events itself.
    let created = match listed.created {
        Some(created) => created as usize,
        None => conn
            .prepare_cached(&format!(
                "{CREATED_EVENTS} FROM findings WHERE id > ?1 AND {ID_CEILING} ORDER BY id"
            ))?
            .execute(params![ctx.findings_before])?,
    };
    if created > 0 {
        if suppressed_any {
            // The rule's event after `created`, for the rows this page created suppressed.
            conn.prepare_cached(&format!(
                "INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value,
                     at, reason, until, rule)
                 SELECT f.id, f.last_run_id, 'suppressed', NULL, f.triage, f.first_seen,
                        f.triage_reason, f.triage_until, f.triage_rule
                 FROM findings f
                 WHERE f.id IN (SELECT finding_id FROM finding_events
                                WHERE id > ?1 AND {ID_CEILING} AND kind = 'created')
                   AND f.triage_source = 'rule'
                 ORDER BY f.id"
            ))?
            .execute(params![ctx.events_before])?;
        }
        inherit_branch_triage(conn, ctx, run)?;
    }
    // The run's counters take the page's events, read in the same statement (one round trip
    // less per page): one `created` event per inserted row, the triggers' `reopened` per
    // fixed row listed again and `fixed` per known row the vendor calls resolved. A row
    // created already fixed (resolved at the vendor, or by a run older than the scan's
    // newest success) was never open here: neither new nor open. Every other row the page
    // changed was known and stays (or becomes) open. The page's own counts are what its
    // update added. Also read: the fixed rows that came back to their triage (`returned`),
    // present again like the reopened ones.
    let (totals, returned) = conn
        .prepare_cached(&format!(
            "UPDATE sync_runs SET seen = seen + ?2, new = new + c.created_open,
                 open = open + CASE WHEN ?2 > c.counted THEN ?2 - c.counted ELSE 0 END,
                 reopened = reopened + c.page_reopened, fixed = fixed + c.page_fixed,
                 pages = pages + 1, listed_present = listed_present + ?4
             FROM (SELECT count(*) FILTER (WHERE kind = 'created' AND new_value != 'fixed')
                              AS created_open,
                          count(*) FILTER (WHERE kind = 'reopened') AS page_reopened,
                          count(*) FILTER (WHERE kind = 'fixed') AS page_fixed,
                          count(*) FILTER (WHERE kind = 'created' OR kind = 'reopened'
                                               OR kind = 'fixed') AS counted
                   FROM finding_events WHERE id > ?3 AND {ID_CEILING}) AS c
             WHERE sync_runs.id = ?1
             RETURNING seen, new, open, reopened, fixed, missing, pages,
                 (SELECT count(*) FROM finding_events
                  WHERE id > ?3 AND {ID_CEILING} AND kind = 'returned'
                    AND old_value = 'fixed')"
        ))?
        .query_row(
            params![
                run,
                listed.rows as i64,
                ctx.events_before,
                listed.present as i64
            ],
            |r| Ok((counts_from(r, 0)?, r.get::<i64>(7)?)),
        )?;
    let before = &ctx.counts;
    let counts = RunCounts {
        seen: listed.rows,
        new: totals.new - before.new,
        open: totals.open - before.open,
        reopened: totals.reopened - before.reopened,
        fixed: totals.fixed - before.fixed,
        missing: 0,
        pages: 1,
    };
    // A page planned without the rows' states that brought a fixed row back, or fixed one
    // by the vendor's word, may have met a row a second finding of its identity should
    // take instead (the trade of states, see `UPSERT_FINDING_SQL`): written again, planned
    // with the look-up. Rare (a re-sync's rows keep their states), and only this page.
    if listed.planned_alone && (counts.reopened > 0 || counts.fixed > 0 || returned > 0) {
        looked_up.again = Some(run);
        return Ok(None);
    }
    // The scan's present findings: those the page created present, brought back from
    // `fixed`, and made `fixed` (the vendor's word).
    let present = (counts.new + counts.reopened) as i64 + returned - counts.fixed as i64;
    if present != 0 {
        conn.prepare_cached("UPDATE scans SET present_count = present_count + ?2 WHERE id = ?1")?
            .execute(params![ctx.scan_id, present])?;
    }
    Ok(Some(counts))
}

#[cfg(test)]
thread_local! {
    /// Set by a test to import pages one finding at a time on PostgreSQL too, to compare.
    pub(super) static ONE_BY_ONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// How often [`upsert_rows_batched`] fell back to one finding at a time.
    pub(super) static FELL_BACK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// How often a page planned without the look-up was undone and planned with it.
    pub(super) static LOOKED_UP_AGAIN: std::cell::Cell<usize> =
        const { std::cell::Cell::new(0) };
    /// How often `fix_absent` read the scan's rows (rather than skipping a run that listed
    /// them all).
    pub(super) static FIX_PASSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Whether a test asked for [`upsert_rows`] on PostgreSQL too ([`ONE_BY_ONE`]).
fn one_by_one() -> bool {
    #[cfg(test)]
    return ONE_BY_ONE.with(|o| o.get());
    #[cfg(not(test))]
    false
}

/// The page's findings one statement each, in order; how many were inserted or updated.
fn upsert_rows(conn: &Db, rows: &[(&Finding, UpsertContext<'_>)]) -> Result<Listed, StoreError> {
    let mut stmt = conn.prepare_cached(&UPSERT_FINDING_SQL)?;
    let mut listed = Listed::default();
    for (finding, up) in rows {
        if let Some(present) = upsert_finding(conn, &mut stmt, *up, finding)? {
            listed.rows += 1;
            listed.present += u64::from(present);
        }
    }
    Ok(listed)
}

/// The rows a page's upserts inserted or updated, and how many of them are present (in any
/// state but `fixed`); how many they inserted, when they also wrote those rows' `created`
/// events.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Listed {
    rows: u64,
    present: u64,
    created: Option<u64>,
    /// Batched, and planned without the look-up: blind to the rows' states.
    planned_alone: bool,
}

/// [`upsert_rows`] with the same outcome in one statement ([`UPSERT_ROWS_SQL`]), for
/// PostgreSQL, where each statement is a round trip and its own executor start-up.
///
/// [`upsert_finding`] runs the upsert of a finding's first fingerprint and, while that
/// changes nothing because this run already stored that row for another finding with the
/// same identity, the next occurrence's. Only the statements that change a row matter (one
/// that changes nothing writes nothing and fires no trigger), so [`plan_page`] works out
/// beforehand, from the rows' `touched_run_id`, vendor id and lines, which fingerprint each
/// finding ends up stored under, or that it changes nothing; the changing upserts then run
/// as one statement, in the page's order, which inserts and updates the same rows in the
/// same order (their events written by the triggers at the statement's end, in row order).
/// What differs is invisible: the identity values the no-op upserts would have drawn
/// (PostgreSQL's ids have gaps anyway).
///
/// The look-up costs as much as a fifth of the page (an index probe per finding), and it
/// almost always finds nothing, so a run's pages are first planned without it (see
/// [`LookedUpRuns`]). Should the statement leave a planned finding unchanged, the page's
/// transaction has changes to undo: `None`, and [`Store::upsert_page`] rolls it back and
/// writes the page again, planned with the look-up, or, if that was the plan, one finding
/// at a time. Rolling the whole page back on that rare miss is cheaper than a savepoint
/// before every page (a round trip, and a subtransaction for every row written).
fn upsert_rows_batched(
    conn: &Db,
    rows: &[(&Finding, UpsertContext<'_>)],
    findings_before: i64,
    looked_up: &mut LookedUpRuns,
) -> Result<Option<Listed>, StoreError> {
    let Some((_, first)) = rows.first() else {
        return Ok(Some(Listed::default()));
    };
    let again = looked_up.again.take() == Some(first.run);
    let look_up = again || looked_up.runs.contains(&first.run);
    let plan = plan_page(conn, rows, first.scan_id, first.run, look_up)?;
    if let Some(changed) = upsert_planned(conn, rows, plan, findings_before)? {
        return Ok(Some(Listed {
            planned_alone: !look_up,
            ..changed
        }));
    }
    if look_up {
        tracing::warn!(
            "the page's upserts did not change the rows foreseen; importing it one finding at a time"
        );
        looked_up.one_by_one.insert(first.run);
        #[cfg(test)]
        FELL_BACK.with(|n| n.set(n.get() + 1));
    } else {
        // Most pages meet no row their run (or a newer one) stored: planned on the page
        // alone, the statement changes every row it names. This one did not, so the run's
        // pages are looked up from now on.
        looked_up.insert(first.run);
        #[cfg(test)]
        LOOKED_UP_AGAIN.with(|n| n.set(n.get() + 1));
    }
    Ok(None)
}

/// The runs whose pages [`upsert_rows_batched`] plans with the look-up of the rows stored
/// already: one of their pages met a row the run had stored (a page sent again, or one
/// identity listed on two pages), so later pages likely will too; and the runs whose next
/// page goes one finding at a time (its planned statement missed even so). Only speed
/// depends on it; a run is forgotten when it ends, and all of them should this grow past a
/// few dozen (runs that never ended).
#[derive(Default)]
pub(super) struct LookedUpRuns {
    runs: std::collections::HashSet<RunId>,
    one_by_one: std::collections::HashSet<RunId>,
    /// The run whose page is written again, planned with the look-up: planned alone, it
    /// met a row in the other state (see [`upsert_page_in`]).
    again: Option<RunId>,
}

impl LookedUpRuns {
    fn insert(&mut self, run: RunId) {
        if self.runs.len() >= 64 {
            self.runs.clear();
        }
        self.runs.insert(run);
    }

    pub(super) fn forget(&mut self, run: RunId) {
        self.runs.remove(&run);
        self.one_by_one.remove(&run);
    }
}

/// Runs the upserts `plan` keeps (see [`plan_page`]) as one statement, with the `created`
/// events of the rows it inserts (ids above `findings_before`); the rows changed, or `None`
/// when that is not every planned row (the statement's changes are then still to be undone).
fn upsert_planned(
    conn: &Db,
    rows: &[(&Finding, UpsertContext<'_>)],
    plan: Vec<Option<String>>,
    findings_before: i64,
) -> Result<Option<Listed>, StoreError> {
    let Some((_, first)) = rows.first() else {
        return Ok(Some(Listed::default()));
    };
    let mut batch: Vec<[db::Value<'_>; 26]> = rows
        .iter()
        .zip(plan)
        .filter_map(|((finding, up), key)| Some(batch_row(finding, key?, up)))
        .collect();
    let planned = batch.len() as u64;
    if planned == 0 {
        return Ok(Some(Listed::default()));
    }
    let mut args: Vec<db::Value<'_>> = vec![
        first.scan_id.into(),
        first.at.into(),
        first.run.into(),
        FINGERPRINT_RECIPE.into(),
        first.stale.value(),
    ];
    args.extend((0..BATCH_COLUMNS.len()).map(|column| {
        db::Value::List(
            batch
                .iter_mut()
                .map(|row| std::mem::replace(&mut row[column], db::Value::Null))
                .collect(),
        )
    }));
    args.push(findings_before.into());
    let (rows, present, created): (i64, i64, i64) = conn
        .prepare_cached(&UPSERT_ROWS_SQL)?
        .query_row(db::params_from_iter(&args), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok((rows as u64 == planned).then_some(Listed {
        rows: planned,
        present: present as u64,
        created: Some(created as u64),
        planned_alone: false,
    }))
}

/// A row an upsert of a fingerprint would meet: the run that last touched it, whether it is
/// `fixed` (what the upsert's trade of states looks at), and its vendor id and lines (what
/// tells a repeated sighting from a second finding).
#[derive(Clone)]
struct Met {
    touched: RunId,
    fixed: bool,
    vendor_id: Option<String>,
    lines: (Option<u32>, Option<u32>),
}

/// For each finding of the page, in order, the fingerprint [`upsert_finding`] would store
/// it under, or `None` when it would change nothing (see [`upsert_rows_batched`]): the same
/// walk over occurrences, with the same trade of states, on the rows as the store holds them
/// (read a few fingerprints ahead, and again if the walk goes further) and as the page's
/// earlier findings leave them. Without `look_up` it takes the store to hold no row this
/// run or a newer one touched and no state to trade (the rows older runs stored are
/// upserted all the same); the statement and the page's events then tell whether that was
/// so (see [`upsert_page_in`]).
fn plan_page(
    conn: &Db,
    rows: &[(&Finding, UpsertContext<'_>)],
    scan_id: i64,
    run: RunId,
    look_up: bool,
) -> Result<Vec<Option<String>>, StoreError> {
    use std::collections::HashMap;
    /// Fingerprints read beyond the one a walk needs, for the walk's next steps.
    const AHEAD: u32 = 3;
    if !look_up {
        // The usual page: taken to meet no row this run stored, a page of distinct
        // identities places each finding under its first fingerprint, which is what the walk
        // below ends with, without its maps (a tenth of a re-sync's client time).
        let firsts: Vec<String> = rows.iter().map(|(f, _)| f.fingerprint(0)).collect();
        let mut distinct = std::collections::HashSet::with_capacity(firsts.len());
        if firsts.iter().all(|key| distinct.insert(key.as_str())) {
            return Ok(firsts.into_iter().map(Some).collect());
        }
    }
    let mut fingerprints: Vec<Vec<String>> =
        rows.iter().map(|(f, _)| vec![f.fingerprint(0)]).collect();
    // Each fingerprint read (or, without `look_up`, taken to be free): `None` = no row.
    let mut stored: HashMap<String, Option<Met>> = HashMap::new();
    // First the page's first fingerprints, with room for the identities it lists more than
    // once.
    let mut wanted: Vec<(usize, u32)> = rows.iter().enumerate().map(|(i, _)| (i, 0)).collect();
    let mut count: HashMap<&str, u32> = HashMap::new();
    for (i, fps) in fingerprints.iter().enumerate() {
        let seen = count.entry(fps[0].as_str()).or_insert(0);
        wanted.extend((1..=*seen).map(|occurrence| (i, occurrence)));
        *seen += 1;
    }
    loop {
        let mut keys = Vec::with_capacity(wanted.len());
        for (i, occurrence) in wanted.drain(..) {
            let fps = &mut fingerprints[i];
            while fps.len() <= occurrence as usize {
                fps.push(rows[i].0.fingerprint(fps.len() as u32));
            }
            let key = &fps[occurrence as usize];
            if !stored.contains_key(key) {
                stored.insert(key.clone(), None);
                keys.push(key.clone());
            }
        }
        if look_up && !keys.is_empty() {
            // One look-up in the dedup key per fingerprint: the LATERAL subquery with its
            // LIMIT is not merged into a join, which PostgreSQL, without statistics (a first
            // big import) or in a generic plan, would answer by reading the whole table.
            let mut read = conn.prepare_cached(
                "SELECT f.fingerprint, f.touched_run_id,
                        CASE WHEN f.state = 'fixed' THEN 1 ELSE 0 END,
                        f.vendor_id, f.start_line, f.end_line
                 FROM unnest(CAST(?2 AS TEXT[])) AS k(fingerprint)
                 CROSS JOIN LATERAL (
                     SELECT fingerprint, touched_run_id, state, vendor_id, start_line, end_line
                     FROM findings WHERE scan_id = ?1 AND fingerprint = k.fingerprint LIMIT 1
                 ) f",
            )?;
            let found = read.query_map(
                params![
                    scan_id,
                    db::Value::List(keys.iter().map(|k| k.value()).collect())
                ],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        Met {
                            touched: r.get(1)?,
                            fixed: r.get::<i64>(2)? != 0,
                            vendor_id: r.get(3)?,
                            lines: (r.get(4)?, r.get(5)?),
                        },
                    ))
                },
            )?;
            for row in found {
                let (key, met) = row?;
                stored.insert(key, Some(met));
            }
        }
        // The walk, on a copy: what the page's own upserts leave behind.
        let mut now = stored.clone();
        let mut plan = Vec::with_capacity(rows.len());
        for (i, (finding, _)) in rows.iter().enumerate() {
            let resolved = finding.verdict == Some(crate::finding::Verdict::Resolved);
            let mut placed = None;
            for occurrence in 0u32.. {
                let fps = &mut fingerprints[i];
                while fps.len() <= occurrence as usize + 1 {
                    fps.push(finding.fingerprint(fps.len() as u32));
                }
                let key = &fps[occurrence as usize];
                let Some(met) = now.get(key) else {
                    wanted.extend((occurrence..=occurrence + AHEAD).map(|o| (i, o)));
                    break;
                };
                match met {
                    Some(met) if met.touched >= run => {
                        if met.touched != run
                            || finding.same_sighting(met.vendor_id.as_deref(), met.lines)
                        {
                            break;
                        }
                        continue;
                    }
                    Some(met) if look_up && met.fixed != resolved => {
                        // The upsert's trade of states: the next occurrence's row, when it
                        // is untouched by this run and in the state this finding is in.
                        let next = &fps[occurrence as usize + 1];
                        match now.get(next) {
                            None => {
                                wanted.extend(
                                    (occurrence + 1..=occurrence + 1 + AHEAD).map(|o| (i, o)),
                                );
                                break;
                            }
                            Some(Some(n)) if n.touched < run && n.fixed == resolved => continue,
                            Some(Some(n))
                                if n.touched == run
                                    && finding.same_sighting(n.vendor_id.as_deref(), n.lines) =>
                            {
                                continue
                            }
                            Some(_) => {}
                        }
                    }
                    _ => {}
                }
                let key = key.clone();
                now.insert(
                    key.clone(),
                    Some(Met {
                        touched: run,
                        fixed: false,
                        vendor_id: finding.vendor_id.clone(),
                        lines: finding.lines(),
                    }),
                );
                placed = Some(key);
                break;
            }
            plan.push(placed);
        }
        if wanted.is_empty() {
            return Ok(plan);
        }
    }
}

/// One finding's values in [`BATCH_COLUMNS`]' order: what [`upsert_finding`] binds to the
/// same placeholders.
fn batch_row<'a>(
    finding: &'a Finding,
    fingerprint: String,
    up: &UpsertContext<'a>,
) -> [db::Value<'a>; 26] {
    let (kind, file_path, start_line, end_line, method, api_path, host) =
        location_columns(&finding.location);
    let rule = up.rule;
    let text = |t: Option<&'a str>| t.map_or(db::Value::Null, |t| db::Value::Text(t.into()));
    let int = |i: Option<u32>| i.map_or(db::Value::Null, |i| db::Value::Int(i.into()));
    [
        db::Value::Text(fingerprint.into()),
        text(Some(&finding.title)),
        text(Some(finding.severity.as_str())),
        text(finding.vendor_status.as_deref()),
        text(finding.cwe.as_deref()),
        text(finding.owasp.as_deref()),
        text(finding.rule_id.as_deref()),
        text(Some(kind)),
        text(file_path),
        int(start_line),
        int(end_line),
        text(method),
        text(api_path),
        text(host),
        text(finding.description.as_deref()),
        text(finding.remediation.as_deref()),
        text(finding.vendor_url.as_deref()),
        text(finding.vendor_id.as_deref()),
        text(finding.vendor_first_seen.as_deref()),
        text(finding.vendor_last_seen.as_deref()),
        text(Some(&finding.raw)),
        text(finding.verdict.map(|v| v.as_str())),
        text(rule.map(|r| r.state.as_str())),
        text(rule.map(|r| r.name.as_str())),
        text(rule.map(|r| r.reason.as_str())),
        rule.and_then(|r| r.until_word()).into(),
    ]
}

/// A location's columns: kind, file path, start and end line, HTTP method, API path, host.
#[allow(clippy::type_complexity)]
fn location_columns(
    location: &Location,
) -> (
    &'static str,
    Option<&str>,
    Option<u32>,
    Option<u32>,
    Option<&str>,
    Option<&str>,
    Option<&str>,
) {
    match location {
        Location::Code {
            path,
            start_line,
            end_line,
        } => (
            "code",
            Some(path.as_str()),
            *start_line,
            *end_line,
            None,
            None,
            None,
        ),
        Location::Api { method, path, host } => (
            "api",
            None,
            None,
            None,
            Some(method.as_str()),
            Some(path.as_str()),
            Some(host.as_str()),
        ),
        Location::Unknown => ("unknown", None, None, None, None, None, None),
    }
}

/// What [`upsert_finding`] needs besides the finding.
#[derive(Clone, Copy)]
pub(super) struct UpsertContext<'a> {
    pub(super) scan_id: i64,
    pub(super) run: RunId,
    pub(super) at: &'a str,
    /// The run is older than the scan's newest success (see [`UPSERT_FINDING_SQL`]).
    pub(super) stale: bool,
    /// The suppression rule that matches the finding, if any.
    pub(super) rule: Option<&'a crate::config::SuppressRule>,
}

/// Upserts one finding; returns whether the row it inserted or updated is present (not
/// `fixed`), or `None` when this run had already seen it (a repeated page) or a newer run
/// has decided it.
///
/// A no-op upsert on a row this run already stored is either the same sighting again or a
/// second finding with the same identity parts: the latter is stored under the next
/// occurrence's fingerprint (see [`Finding::fingerprint`]). So is one on a row no run this
/// new has touched: the upsert left it for the next occurrence's (see its trade of states).
pub(super) fn upsert_finding(
    conn: &Db,
    stmt: &mut db::Stmt<'_>,
    up: UpsertContext<'_>,
    finding: &Finding,
) -> Result<Option<bool>, StoreError> {
    let UpsertContext {
        scan_id,
        run,
        at,
        stale,
        rule,
    } = up;
    let rule_until = rule.and_then(|r| r.until_word());
    let (kind, file_path, start_line, end_line, method, api_path, host) =
        location_columns(&finding.location);
    let verdict = finding.verdict.map(|v| v.as_str());
    for occurrence in 0u32.. {
        let (fingerprint, next) = finding.fingerprint_and_next(occurrence);
        let changed = stmt
            .query_row(
                params![
                    scan_id,
                    fingerprint,
                    finding.title,
                    finding.severity.as_str(),
                    finding.vendor_status,
                    finding.cwe,
                    finding.owasp,
                    finding.rule_id,
                    kind,
                    file_path,
                    start_line,
                    end_line,
                    method,
                    api_path,
                    host,
                    finding.description,
                    finding.remediation,
                    finding.vendor_url,
                    finding.vendor_id,
                    finding.vendor_first_seen,
                    finding.vendor_last_seen,
                    finding.raw,
                    at,
                    run,
                    verdict,
                    FINGERPRINT_RECIPE,
                    stale,
                    rule.map(|r| r.state.as_str()),
                    rule.map(|r| r.name.as_str()),
                    rule.map(|r| r.reason.as_str()),
                    rule_until,
                    next,
                ],
                |r| r.get::<String>(0),
            )
            .optional()?;
        if let Some(state) = changed {
            return Ok(Some(state != FindingState::Fixed.as_str()));
        }
        let existing: (i64, Option<String>, Option<u32>, Option<u32>) = conn
            .prepare_cached(
                "SELECT touched_run_id, vendor_id, start_line, end_line FROM findings
                 WHERE scan_id = ?1 AND fingerprint = ?2",
            )?
            .query_row(params![scan_id, fingerprint], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
        let (touched, vendor_id, start, end) = existing;
        if touched < run {
            continue; // the next occurrence's row is this finding's (see the upsert)
        }
        if touched != run || finding.same_sighting(vendor_id.as_deref(), (start, end)) {
            return Ok(None);
        }
    }
    unreachable!("occurrences are unbounded")
}

impl Store {
    /// Imports one vendor page in one transaction and returns what it changed (see the
    /// module docs for the rules). The run's counters move in the same transaction. Only the
    /// holder of the scan's lease stores: [`StoreError::LeaseLost`] otherwise. A run that a
    /// newer run of its scan overtook (that run stored a page, see `RunContext::overtaken_by`)
    /// stores nothing more and changes nothing; one that a newer run's success overtook
    /// still imports, without fixing (`stale`).
    pub fn upsert_page(&mut self, run: RunId, page: &[Finding]) -> Result<RunCounts, StoreError> {
        // At most three tries: planned alone, planned with the look-up, one by one.
        loop {
            let tx = self.conn.write_transaction()?;
            let ctx = running_context(&tx, &self.owner, run)?;
            if !ctx.holds_lease {
                return Err(StoreError::LeaseLost(run));
            }
            if !ctx.newer_success && ctx.overtaken_by.is_some() {
                // Overtaken: a newer listing is being stored, and its end decides. This
                // one's words (a "resolved" there) would only be undone, and announced.
                tracing::debug!(
                    run_id = run,
                    "a newer run of this scan has stored findings: this older listing's page is not stored"
                );
                return Ok(RunCounts::default());
            }
            let Some(counts) = upsert_page_in(
                &tx,
                &ctx,
                run,
                page,
                &self.suppress_rules,
                &mut self.looked_up,
            )?
            else {
                continue; // rolled back as `tx` goes
            };
            tx.commit()?;
            return Ok(counts);
        }
    }
}
