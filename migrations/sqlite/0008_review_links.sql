-- Email with decisions in it: the HTML part of each message, the server's own secrets (the key
-- that signs review links, made once and shared by every instance on this database), the links
-- already used (single use), and when a call's reminder and outcome emails were queued (once).
ALTER TABLE outbox ADD COLUMN html TEXT;

CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY NOT NULL,
    value       TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE used_review_links (
    nonce    TEXT PRIMARY KEY NOT NULL,
    call_id  TEXT NOT NULL REFERENCES tool_calls (id),
    used_at  TEXT NOT NULL
);

ALTER TABLE tool_calls ADD COLUMN reminded_at TEXT;
ALTER TABLE tool_calls ADD COLUMN outcome_mailed_at TEXT;

-- A call's page lists its messages.
CREATE INDEX outbox_call ON outbox (call_id, id);
