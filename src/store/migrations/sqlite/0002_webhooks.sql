-- scansync store, schema version 2: the webhook outbox.
--
-- One row per notification for one webhook. Rows are written in the transaction that ends
-- a run (so a finished run always has its notifications), then delivered by the daemon's
-- delivery task (or the one-shot pass of `scansync sync` / `scan`), which records every
-- attempt here. `scansync webhook pending` lists the rows not delivered.

CREATE TABLE webhook_outbox (
    id              INTEGER PRIMARY KEY,
    -- Sent as the `webhook-id` header: the same on every retry, so receivers drop duplicates.
    msg_id          TEXT NOT NULL UNIQUE,
    -- The NAME of [webhooks.NAME] in the config.
    webhook         TEXT NOT NULL,
    -- findings.new, findings.fixed, findings.reopened or run.failed (the payload's `type`).
    event_type      TEXT NOT NULL,
    run_id          INTEGER REFERENCES sync_runs(id),
    -- The exact JSON body sent, composed when the run ended.
    payload         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    -- pending: still to deliver; delivered: a 2xx came back; gave_up: see last_error.
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'gave_up')),
    -- Attempts started (an attempt cut short by a crash counts too).
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- When a pending row is next due. While an attempt is in flight it is pushed past the
    -- attempt's timeout (a lease), so a second process does not send the same row at once,
    -- and a process killed mid-attempt leaves the row due again shortly after.
    next_attempt_at TEXT,
    last_attempt_at TEXT,
    -- The HTTP status of the last attempt; NULL when no answer came (connect error, timeout).
    last_status     INTEGER,
    last_error      TEXT,
    delivered_at    TEXT,
    gave_up_at      TEXT
);

CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_outbox_by_state ON webhook_outbox (state, id);
