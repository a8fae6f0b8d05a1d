-- scansync store, schema version 4: `findings` and `finding_events` with their CHECK
-- constraints written as OR-chains of equalities instead of IN lists. Same columns, same
-- accepted values, same indexes and triggers.
--
-- Why: SQLite evaluates CHECK (x IN ('a', 'b', …)) by building a temporary b-tree of the list
-- for every row it writes. On the page import (one upsert per finding, one event per new
-- finding) those temporary b-trees were about two thirds of all CPU instructions; the
-- OR-chain is a few string comparisons (BENCHMARKS.md has the profile).
--
-- SQLite cannot alter a constraint, so both tables are rebuilt: new table, copy, drop, rename.
-- The new `finding_events` first references `findings_new`, so that dropping the old
-- `findings` (foreign keys on: an implicit DELETE) has no child rows to cascade into; renaming
-- `findings_new` to `findings` then rewrites that reference.

CREATE TABLE findings_new (
    id                INTEGER PRIMARY KEY,
    scan_id           INTEGER NOT NULL REFERENCES scans(id),
    fingerprint       TEXT NOT NULL,
    state             TEXT NOT NULL
                      CHECK (state = 'new' OR state = 'open' OR state = 'fixed'
                             OR state = 'reopened' OR state = 'false_positive'
                             OR state = 'accepted'),
    title             TEXT NOT NULL,
    severity          TEXT NOT NULL
                      CHECK (severity = 'critical' OR severity = 'high' OR severity = 'medium'
                             OR severity = 'low' OR severity = 'info'),
    vendor_status     TEXT,
    cwe               TEXT,
    owasp             TEXT,
    rule_id           TEXT,
    location_kind     TEXT NOT NULL
                      CHECK (location_kind = 'code' OR location_kind = 'api'
                             OR location_kind = 'unknown'),
    file_path         TEXT,
    start_line        INTEGER,
    end_line          INTEGER,
    http_method       TEXT,
    api_path          TEXT,
    api_host          TEXT,
    description       TEXT,
    remediation       TEXT,
    vendor_url        TEXT,
    vendor_id         TEXT,
    vendor_first_seen TEXT,
    vendor_last_seen  TEXT,
    raw               TEXT NOT NULL,
    first_seen        TEXT NOT NULL,
    last_seen         TEXT NOT NULL,
    times_seen        INTEGER NOT NULL,
    last_run_id       INTEGER NOT NULL REFERENCES sync_runs(id),
    UNIQUE (scan_id, fingerprint)
);
INSERT INTO findings_new (
    id, scan_id, fingerprint, state, title, severity, vendor_status, cwe, owasp, rule_id,
    location_kind, file_path, start_line, end_line, http_method, api_path, api_host,
    description, remediation, vendor_url, vendor_id, vendor_first_seen, vendor_last_seen, raw,
    first_seen, last_seen, times_seen, last_run_id)
SELECT
    id, scan_id, fingerprint, state, title, severity, vendor_status, cwe, owasp, rule_id,
    location_kind, file_path, start_line, end_line, http_method, api_path, api_host,
    description, remediation, vendor_url, vendor_id, vendor_first_seen, vendor_last_seen, raw,
    first_seen, last_seen, times_seen, last_run_id
FROM findings ORDER BY id;

CREATE TABLE finding_events_new (
    id         INTEGER PRIMARY KEY,
    finding_id INTEGER NOT NULL REFERENCES findings_new(id) ON DELETE CASCADE,
    run_id     INTEGER REFERENCES sync_runs(id),
    kind       TEXT NOT NULL
               CHECK (kind = 'created' OR kind = 'severity_changed' OR kind = 'status_changed'
                      OR kind = 'fixed' OR kind = 'reopened' OR kind = 'state_set'),
    old_value  TEXT,
    new_value  TEXT,
    at         TEXT NOT NULL
);
INSERT INTO finding_events_new (id, finding_id, run_id, kind, old_value, new_value, at)
SELECT id, finding_id, run_id, kind, old_value, new_value, at FROM finding_events ORDER BY id;

-- Dropping a table drops its indexes and triggers with it.
DROP TABLE finding_events;
DROP TABLE findings;
ALTER TABLE findings_new RENAME TO findings;
ALTER TABLE finding_events_new RENAME TO finding_events;

CREATE INDEX finding_events_by_finding ON finding_events (finding_id, id);

CREATE TRIGGER finding_created AFTER INSERT ON findings
BEGIN
    INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at)
    VALUES (NEW.id, NEW.last_run_id, 'created', NULL, NEW.state, NEW.first_seen);
END;

CREATE TRIGGER finding_reopened AFTER UPDATE OF state ON findings
WHEN OLD.state = 'fixed' AND NEW.state = 'reopened'
BEGIN
    INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at)
    VALUES (NEW.id, NEW.last_run_id, 'reopened', OLD.state, NEW.state, NEW.last_seen);
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
