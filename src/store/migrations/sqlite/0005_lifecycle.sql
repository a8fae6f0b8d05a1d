-- scansync store, schema version 5: a lifecycle that tells the truth.
--
-- - `owners` and `scan_leases`: one runner per scan, across processes, containers and (with
--   a shared database) hosts. Liveness is a heartbeat in the store, never a process id.
-- - `findings` gains the state `missing` (absent once from a complete listing whose fixes the
--   mass-fix guard held back), the vendor's verdict, the triage a person or the vendor set,
--   the fingerprint recipe version, and `touched_run_id` (the newest run that saw the finding
--   or changed its state: an older run never overwrites what a newer one decided).
-- - `finding_events` gains the kinds `missing`, `returned` and `vendor_state`, and an index by
--   run: outgoing notifications are built from each run's events.
-- - `sync_runs` gains the run's owner, the held fixes, the rules it ends by and when its
--   notifications were written.
--
-- Fingerprints are re-keyed to recipe 2 by code that runs in this same transaction (see
-- `rekey_v2` in store/mod.rs): row ids, states and history stay.

-- One row per scansync process that runs (or may run) scans: a random id per process start,
-- a label for people (host and pid), and a heartbeat. A `running` run whose owner row is gone
-- or expired was left by a process that stopped or died: any daemon may adopt it.
CREATE TABLE owners (
    owner        TEXT PRIMARY KEY,
    label        TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);

-- One row per store scan (`name` or `name@branch`) being run: who holds it, for which run,
-- until when. Claimed in one immediate transaction when the row is absent or expired;
-- renewed by the holder's heartbeat; deleted when the run ends.
CREATE TABLE scan_leases (
    scan         TEXT PRIMARY KEY,
    owner        TEXT NOT NULL,
    run_id       INTEGER,
    acquired_at  TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);

ALTER TABLE sync_runs ADD COLUMN owner TEXT;
ALTER TABLE sync_runs ADD COLUMN missing INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_runs ADD COLUMN notified_at TEXT;
-- The rules the run ends by, from the scan's config when it began (an adopting process uses
-- these, not its own config): the mass-fix guard's share and the notifications' severity.
ALTER TABLE sync_runs ADD COLUMN fix_guard REAL NOT NULL DEFAULT 0.5;
ALTER TABLE sync_runs ADD COLUMN min_severity TEXT;
-- Runs that ended before this version had their notifications written when they ended.
UPDATE sync_runs SET notified_at = finished_at WHERE state != 'running';

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
    -- active | resolved | false_positive | accepted: the vendor's status word read into the
    -- lifecycle (NULL: no word, or one scansync does not know).
    vendor_verdict      TEXT,
    -- false_positive | accepted, kept while the finding is fixed or missing so that it
    -- returns to it; `triage_source` says who set it (local: a person; vendor: the vendor's
    -- word). A local triage wins over the vendor's.
    triage              TEXT CHECK (triage IS NULL OR triage = 'false_positive' OR triage = 'accepted'),
    triage_source       TEXT CHECK (triage_source IS NULL OR triage_source = 'local' OR triage_source = 'vendor'),
    fingerprint_version INTEGER NOT NULL DEFAULT 2,
    touched_run_id      INTEGER NOT NULL,
    UNIQUE (scan_id, fingerprint)
);
INSERT INTO findings_new (
    id, scan_id, fingerprint, state, title, severity, vendor_status, cwe, owasp, rule_id,
    location_kind, file_path, start_line, end_line, http_method, api_path, api_host,
    description, remediation, vendor_url, vendor_id, vendor_first_seen, vendor_last_seen, raw,
    first_seen, last_seen, times_seen, last_run_id, triage, triage_source,
    fingerprint_version, touched_run_id)
SELECT
    id, scan_id, fingerprint, state, title, severity, vendor_status, cwe, owasp, rule_id,
    location_kind, file_path, start_line, end_line, http_method, api_path, api_host,
    description, remediation, vendor_url, vendor_id, vendor_first_seen, vendor_last_seen, raw,
    first_seen, last_seen, times_seen, last_run_id,
    CASE WHEN state = 'false_positive' OR state = 'accepted' THEN state END,
    CASE WHEN state = 'false_positive' OR state = 'accepted' THEN 'local' END,
    1, last_run_id
FROM findings ORDER BY id;

CREATE TABLE finding_events_new (
    id         INTEGER PRIMARY KEY,
    finding_id INTEGER NOT NULL REFERENCES findings_new(id) ON DELETE CASCADE,
    run_id     INTEGER REFERENCES sync_runs(id),
    kind       TEXT NOT NULL
               CHECK (kind = 'created' OR kind = 'severity_changed' OR kind = 'status_changed'
                      OR kind = 'fixed' OR kind = 'reopened' OR kind = 'state_set'
                      OR kind = 'missing' OR kind = 'returned' OR kind = 'vendor_state'),
    old_value  TEXT,
    new_value  TEXT,
    at         TEXT NOT NULL
);
INSERT INTO finding_events_new (id, finding_id, run_id, kind, old_value, new_value, at)
SELECT id, finding_id, run_id, kind, old_value, new_value, at FROM finding_events ORDER BY id;

DROP TABLE finding_events;
DROP TABLE findings;
ALTER TABLE findings_new RENAME TO findings;
ALTER TABLE finding_events_new RENAME TO finding_events;

CREATE INDEX finding_events_by_finding ON finding_events (finding_id, id);
CREATE INDEX finding_events_by_run ON finding_events (run_id, kind) WHERE run_id IS NOT NULL;

CREATE TRIGGER finding_created AFTER INSERT ON findings
BEGIN
    INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at)
    VALUES (NEW.id, NEW.last_run_id, 'created', NULL, NEW.state, NEW.first_seen);
END;

-- A state change caused by a page import (the import is the only statement that moves
-- `last_run_id`). `new`/`reopened` → `open` is the ordinary second sighting, not an event.
CREATE TRIGGER finding_listed_state_changed AFTER UPDATE OF state ON findings
WHEN OLD.state IS NOT NEW.state AND OLD.last_run_id IS NOT NEW.last_run_id
     AND NOT (NEW.state = 'open' AND (OLD.state = 'new' OR OLD.state = 'reopened'))
BEGIN
    INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at)
    VALUES (NEW.id, NEW.last_run_id,
            CASE WHEN NEW.state = 'fixed' THEN 'fixed'
                 -- Back after a fix to the triage a person gave it: not `reopened` (not news).
                 WHEN OLD.state = 'fixed'
                      AND (NEW.state = 'false_positive' OR NEW.state = 'accepted') THEN 'returned'
                 WHEN OLD.state = 'fixed' THEN 'reopened'
                 WHEN OLD.state = 'missing' THEN 'returned'
                 ELSE 'vendor_state' END,
            OLD.state, NEW.state, NEW.last_seen);
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
