-- scansync store, schema version 1.
--
-- These tables are a documented interface: operators query the file with `sqlite3`.
-- Times are RFC 3339 UTC text by scansync's clock; severities and states are lowercase words.

-- One row per configured vendor instance (by its name in the config).
CREATE TABLE instances (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    vendor      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- One row per configured scan (by its name in the config); findings belong to a scan.
CREATE TABLE scans (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    instance_id INTEGER NOT NULL REFERENCES instances(id),
    bind_to     TEXT NOT NULL,
    branch      TEXT,
    created_at  TEXT NOT NULL
);

-- One row per sync run. Scope columns are copied so history survives config edits.
-- Counters are updated in the same transaction as each page.
CREATE TABLE sync_runs (
    id             INTEGER PRIMARY KEY,
    scan_id        INTEGER NOT NULL REFERENCES scans(id),
    scan           TEXT NOT NULL,
    instance       TEXT NOT NULL,
    vendor         TEXT NOT NULL,
    bind_to        TEXT NOT NULL,
    branch         TEXT,
    trigger        TEXT NOT NULL,
    state          TEXT NOT NULL
                   CHECK (state IN ('running', 'succeeded', 'failed', 'interrupted', 'timed_out')),
    vendor_scan_id TEXT,
    owner_pid      INTEGER,
    owner_started  TEXT,
    started_at     TEXT NOT NULL,
    finished_at    TEXT,
    seen           INTEGER NOT NULL DEFAULT 0,
    new            INTEGER NOT NULL DEFAULT 0,
    open           INTEGER NOT NULL DEFAULT 0,
    reopened       INTEGER NOT NULL DEFAULT 0,
    fixed          INTEGER NOT NULL DEFAULT 0,
    pages          INTEGER NOT NULL DEFAULT 0,
    error          TEXT
);
CREATE INDEX sync_runs_by_scan ON sync_runs (scan, id);
CREATE INDEX sync_runs_running ON sync_runs (state) WHERE state = 'running';

-- One row per (scan, fingerprint): the latest version of the finding and its lifecycle.
CREATE TABLE findings (
    id                INTEGER PRIMARY KEY,
    scan_id           INTEGER NOT NULL REFERENCES scans(id),
    fingerprint       TEXT NOT NULL,
    state             TEXT NOT NULL
                      CHECK (state IN ('new', 'open', 'fixed', 'reopened', 'false_positive', 'accepted')),
    title             TEXT NOT NULL,
    severity          TEXT NOT NULL
                      CHECK (severity IN ('critical', 'high', 'medium', 'low', 'info')),
    vendor_status     TEXT,
    cwe               TEXT,
    owasp             TEXT,
    rule_id           TEXT,
    location_kind     TEXT NOT NULL CHECK (location_kind IN ('code', 'api', 'unknown')),
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

-- History of every finding. `fixed` and `state_set` rows are written by the store's code;
-- the rows a page import causes are written by the triggers below, which see the old and
-- new values of the same row update (run = the run that last saw the finding).
CREATE TABLE finding_events (
    id         INTEGER PRIMARY KEY,
    finding_id INTEGER NOT NULL REFERENCES findings(id) ON DELETE CASCADE,
    run_id     INTEGER REFERENCES sync_runs(id),
    kind       TEXT NOT NULL
               CHECK (kind IN ('created', 'severity_changed', 'status_changed', 'fixed', 'reopened', 'state_set')),
    old_value  TEXT,
    new_value  TEXT,
    at         TEXT NOT NULL
);
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
