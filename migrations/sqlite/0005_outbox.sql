-- The email outbox (src/store/outbox.rs): messages written in the same transaction as the call
-- they announce, sent by a worker in every instance. status: pending -> sending (claimed) -> sent,
-- or back to pending with a later next_attempt_at, or failed after too many attempts.
CREATE TABLE outbox (
    id               TEXT PRIMARY KEY NOT NULL,
    call_id          TEXT REFERENCES tool_calls (id),
    recipient        TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body             TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  TEXT NOT NULL,
    claimed_by       TEXT,
    claimed_at       TEXT,
    sent_at          TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL
);

CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
