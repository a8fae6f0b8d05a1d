-- scansync store, schema version 3: what the listener (`[server]`) keeps.
--
-- Version 2 belongs to the outgoing webhooks' outbox; migrations apply in version order.

-- Webhook deliveries accepted in the last 24 hours, by the sender's delivery id
-- (X-GitHub-Delivery, X-Request-UUID, X-Request-Id, Idempotency-Key or webhook-id), so that
-- a replayed or re-sent delivery starts nothing. Rows older than 24 hours are deleted as new
-- deliveries come in. `run_id` is the run the delivery started or joined.
CREATE TABLE hook_deliveries (
    scan        TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    run_id      INTEGER REFERENCES sync_runs(id) ON DELETE SET NULL,
    PRIMARY KEY (scan, delivery_id)
);
CREATE INDEX hook_deliveries_by_time ON hook_deliveries (received_at);

-- One row: when `GET /readyz` last proved the store writable (it writes here each time).
CREATE TABLE readiness_probe (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at TEXT NOT NULL
);
