-- The email outbox (src/store/outbox.rs): messages written in the same transaction as the call
-- they announce, sent by a worker in every instance. status: pending -> sending (claimed) -> sent,
-- or back to pending with a later next_attempt_at, or failed after too many attempts.
CREATE TABLE outbox (
    id               TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    call_id          TEXT COLLATE "C" REFERENCES tool_calls (id),
    recipient        TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body             TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  TEXT COLLATE "C" NOT NULL,
    claimed_by       TEXT,
    claimed_at       TEXT COLLATE "C",
    sent_at          TEXT COLLATE "C",
    last_error       TEXT,
    created_at       TEXT COLLATE "C" NOT NULL
);

CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
