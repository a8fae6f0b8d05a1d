-- scansync store, schema version 6: triage a person can give and a rule can apply.
--
-- - `findings` keeps, with the triage it remembers (`triage`, `triage_source`), why
--   (`triage_reason`), who (`triage_by`, a person; NULL for a rule or the vendor), until when
--   (`triage_until`, a date: on that day, UTC, an acceptance ends), when it was given
--   (`triage_at`), the suppression rule that gave it (`triage_rule`, with `triage_source`
--   `rule`), and for an acceptance whether a higher severity at the vendor ends it
--   (`reopen_on_severity_increase`, measured against `triage_severity`, the severity it was
--   accepted at).
-- - `finding_events` carries the same who/why/until/rule on triage events, and gains the kinds
--   `suppressed` (a rule triaged it), `released` (no rule matches it any more), `expired` (an
--   acceptance's or a rule's date passed) and `escalated` (an acceptance ended because the
--   severity rose).
--
-- SQLite cannot change a CHECK in place, so both tables are rebuilt (as in version 5): row ids,
-- states and history stay. Rebuilding both keeps `ON DELETE CASCADE` from emptying the events
-- when the old findings table is dropped.

CREATE TABLE findings_new (
    id                  INTEGER PRIMARY KEY,
    scan_id             INTEGER NOT NULL REFERENCES scans(id),
    fingerprint         TEXT NOT NULL,
    state               TEXT NOT NULL
                        CHECK (state = 'new' OR state = 'open' OR state = 'fixed'
                               OR state = 'reopened' OR state = 'missing'
                               OR state = 'false_positive' OR state = 'accepted'),
    title               TEXT NOT NULL,
    severity            TEXT NOT NULL
                        CHECK (severity = 'critical' OR severity = 'high' OR severity = 'medium'
                               OR severity = 'low' OR severity = 'info'),
    vendor_status       TEXT,
    cwe                 TEXT,
    owasp               TEXT,
    rule_id             TEXT,
    location_kind       TEXT NOT NULL
                        CHECK (location_kind = 'code' OR location_kind = 'api'
                               OR location_kind = 'unknown'),
    file_path           TEXT,
    start_line          INTEGER,
    end_line            INTEGER,
    http_method         TEXT,
    api_path            TEXT,
    api_host            TEXT,
    description         TEXT,
    remediation         TEXT,
    vendor_url          TEXT,
    vendor_id           TEXT,
    vendor_first_seen   TEXT,
    vendor_last_seen    TEXT,
    raw                 TEXT NOT NULL,
    first_seen          TEXT NOT NULL,
    last_seen           TEXT NOT NULL,
    times_seen          INTEGER NOT NULL,
    last_run_id         INTEGER NOT NULL REFERENCES sync_runs(id),
    vendor_verdict      TEXT,
    -- false_positive | accepted, kept while the finding is fixed or missing so that it
    -- returns to it. Who set it: local (a person) wins over rule (a [[suppress]] rule), which
    -- wins over vendor (the vendor's word).
    triage              TEXT CHECK (triage IS NULL OR triage = 'false_positive' OR triage = 'accepted'),
    triage_source       TEXT CHECK (triage_source IS NULL OR triage_source = 'local'
                                    OR triage_source = 'rule' OR triage_source = 'vendor'),
    fingerprint_version INTEGER NOT NULL DEFAULT 2,
    touched_run_id      INTEGER NOT NULL,
    triage_reason       TEXT,
    triage_by           TEXT,
    -- YYYY-MM-DD: the triage ends at the start of that day (UTC). Text order is time order
    -- against the RFC 3339 stamps of `last_seen`.
    triage_until        TEXT,
    triage_at           TEXT,
    triage_rule         TEXT,
    triage_severity     TEXT,
    reopen_on_severity_increase INTEGER NOT NULL DEFAULT 0,
    UNIQUE (scan_id, fingerprint)
);
INSERT INTO findings_new (
    id, scan_id, fingerprint, state, title, severity, vendor_status, cwe, owasp, rule_id,
    location_kind, file_path, start_line, end_line, http_method, api_path, api_host,
    description, remediation, vendor_url, vendor_id, vendor_first_seen, vendor_last_seen, raw,
    first_seen, last_seen, times_seen, last_run_id, vendor_verdict, triage, triage_source,
    fingerprint_version, touched_run_id, triage_severity)
SELECT
    id, scan_id, fingerprint, state, title, severity, vendor_status, cwe, owasp, rule_id,
    location_kind, file_path, start_line, end_line, http_method, api_path, api_host,
    description, remediation, vendor_url, vendor_id, vendor_first_seen, vendor_last_seen, raw,
    first_seen, last_seen, times_seen, last_run_id, vendor_verdict, triage, triage_source,
    fingerprint_version, touched_run_id, CASE WHEN triage IS NOT NULL THEN severity END
FROM findings ORDER BY id;

CREATE TABLE finding_events_new (
    id         INTEGER PRIMARY KEY,
    finding_id INTEGER NOT NULL REFERENCES findings_new(id) ON DELETE CASCADE,
    run_id     INTEGER REFERENCES sync_runs(id),
    kind       TEXT NOT NULL
               CHECK (kind = 'created' OR kind = 'severity_changed' OR kind = 'status_changed'
                      OR kind = 'fixed' OR kind = 'reopened' OR kind = 'state_set'
                      OR kind = 'missing' OR kind = 'returned' OR kind = 'vendor_state'
                      OR kind = 'suppressed' OR kind = 'released' OR kind = 'expired'
                      OR kind = 'escalated'),
    old_value  TEXT,
    new_value  TEXT,
    at         TEXT NOT NULL,
    -- On triage events: who (a person), why, until when, and the rule (for rule events).
    actor      TEXT,
    reason     TEXT,
    until      TEXT,
    rule       TEXT
);
INSERT INTO finding_events_new (id, finding_id, run_id, kind, old_value, new_value, at)
SELECT id, finding_id, run_id, kind, old_value, new_value, at FROM finding_events ORDER BY id;

DROP TABLE finding_events;
DROP TABLE findings;
ALTER TABLE findings_new RENAME TO findings;
ALTER TABLE finding_events_new RENAME TO finding_events;

CREATE INDEX finding_events_by_finding ON finding_events (finding_id, id);
CREATE INDEX finding_events_by_run ON finding_events (run_id, kind) WHERE run_id IS NOT NULL;

-- One statement per created row (the hot path of an ingest); a finding created already
-- suppressed by a rule gets its `suppressed` event from the page import, after `created`.
CREATE TRIGGER finding_created AFTER INSERT ON findings
BEGIN
    INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at)
    VALUES (NEW.id, NEW.last_run_id, 'created', NULL, NEW.state, NEW.first_seen);
END;

-- A state change caused by a page import (the import is the only statement that moves
-- `last_run_id`). `new`/`reopened` → `open` is the ordinary second sighting, not an event.
-- A change among the present states that a triage beginning or ending explains is left to
-- `finding_listed_triage_changed`; one back from `fixed` or `missing` is written here, and
-- the triage trigger adds why the triage changed on the way.
CREATE TRIGGER finding_listed_state_changed AFTER UPDATE OF state ON findings
WHEN OLD.state IS NOT NEW.state AND OLD.last_run_id IS NOT NEW.last_run_id
     AND NOT (NEW.state = 'open' AND (OLD.state = 'new' OR OLD.state = 'reopened'))
BEGIN
    INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at, actor,
                                reason, until, rule)
    SELECT NEW.id, NEW.last_run_id, k.kind, OLD.state, NEW.state, NEW.last_seen,
           CASE WHEN k.kind = 'returned' THEN NEW.triage_by END,
           CASE WHEN k.kind = 'returned' THEN NEW.triage_reason END,
           CASE WHEN k.kind = 'returned' THEN NEW.triage_until END,
           CASE WHEN k.kind = 'returned' THEN NEW.triage_rule END
    FROM (SELECT
            CASE WHEN NEW.state = 'fixed' THEN 'fixed'
                 -- Back after a fix to its triage: not `reopened` (not news).
                 WHEN OLD.state = 'fixed'
                      AND (NEW.state = 'false_positive' OR NEW.state = 'accepted') THEN 'returned'
                 WHEN OLD.state = 'fixed' THEN 'reopened'
                 WHEN OLD.state = 'missing' THEN 'returned'
                 WHEN ((OLD.triage_source = 'local' OR OLD.triage_source = 'rule')
                       AND (OLD.triage_source IS NOT NEW.triage_source
                            OR OLD.triage_rule IS NOT NEW.triage_rule))
                      OR (NEW.triage_source = 'rule'
                          AND (OLD.triage_source IS NOT 'rule'
                               OR OLD.triage_rule IS NOT NEW.triage_rule)) THEN NULL
                 ELSE 'vendor_state' END AS kind) k
    WHERE k.kind IS NOT NULL;
END;

-- A person's or a rule's triage that ends, or a rule's that begins or changes, by an import,
-- whatever the state does meanwhile (a finding fixed or missing when its acceptance ended
-- gets its `expired` event when it comes back). An ending (`expired`: its until passed;
-- `escalated`: the severity rose; `released`: the rule is gone) carries the old who/why/
-- until/rule; a rule that takes over writes `suppressed` with its own, after the ending.
CREATE TRIGGER finding_listed_triage_changed
AFTER UPDATE OF triage_source, triage_rule, triage_reason, triage_until ON findings
WHEN OLD.last_run_id IS NOT NEW.last_run_id
     AND (OLD.triage_source = 'rule' OR NEW.triage_source = 'rule'
          OR (OLD.triage_source = 'local' AND NEW.triage_source IS NOT 'local'))
     AND (OLD.triage_source IS NOT NEW.triage_source OR OLD.triage_rule IS NOT NEW.triage_rule
          OR OLD.triage_reason IS NOT NEW.triage_reason
          OR OLD.triage_until IS NOT NEW.triage_until)
BEGIN
    INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at, actor,
                                reason, until, rule)
    SELECT NEW.id, NEW.last_run_id, k.kind, OLD.state, NEW.state, NEW.last_seen,
           OLD.triage_by, OLD.triage_reason, OLD.triage_until, OLD.triage_rule
    FROM (SELECT
            CASE WHEN OLD.triage_until IS NOT NULL AND OLD.triage_until <= NEW.last_seen
                      THEN 'expired'
                 WHEN OLD.triage_source = 'local' THEN 'escalated'
                 ELSE 'released' END AS kind) k
    WHERE (OLD.triage_source = 'local' OR OLD.triage_source = 'rule')
      AND (OLD.triage_source IS NOT NEW.triage_source OR OLD.triage_rule IS NOT NEW.triage_rule);
    INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at, actor,
                                reason, until, rule)
    SELECT NEW.id, NEW.last_run_id, 'suppressed', OLD.state, NEW.state, NEW.last_seen,
           NEW.triage_by, NEW.triage_reason, NEW.triage_until, NEW.triage_rule
    WHERE NEW.triage_source = 'rule';
END;

CREATE TRIGGER finding_severity_changed AFTER UPDATE OF severity ON findings
WHEN OLD.severity IS NOT NEW.severity
BEGIN
    INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at)
    VALUES (NEW.id, NEW.last_run_id, 'severity_changed', OLD.severity, NEW.severity, NEW.last_seen);
END;

CREATE TRIGGER finding_status_changed AFTER UPDATE OF vendor_status ON findings
WHEN OLD.vendor_status IS NOT NEW.vendor_status
BEGIN
    INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at)
    VALUES (NEW.id, NEW.last_run_id, 'status_changed', OLD.vendor_status, NEW.vendor_status, NEW.last_seen);
END;
