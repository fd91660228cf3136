-- Email with decisions in it (PostgreSQL twin of migrations/sqlite/0008_review_links.sql): the
-- HTML part of each message, the server's own secrets (the key that signs review links, made once
-- and shared by every instance on this database), the links already used (single use), and when a
-- call's reminder and outcome emails were queued (once).
ALTER TABLE outbox ADD COLUMN html TEXT;

CREATE TABLE server_secrets (
    name        TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    value       TEXT NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL
);

CREATE TABLE used_review_links (
    nonce    TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    call_id  TEXT COLLATE "C" NOT NULL REFERENCES tool_calls (id),
    used_at  TEXT COLLATE "C" NOT NULL
);

ALTER TABLE tool_calls ADD COLUMN reminded_at TEXT COLLATE "C";
ALTER TABLE tool_calls ADD COLUMN outcome_mailed_at TEXT COLLATE "C";

-- A call's page lists its messages.
CREATE INDEX outbox_call ON outbox (call_id, id);
