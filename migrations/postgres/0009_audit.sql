-- The audit log (PostgreSQL twin of migrations/sqlite/0009_audit.sql): one row per event, each
-- holding the hash of the one before, so an edited, deleted, inserted or reordered row breaks the
-- chain (`airlock audit verify`). Rows are numbered without gaps from `audit_head`, the chain's
-- newest number and hash, which every append updates (row-locked) in the same transaction as the
-- event it records.
CREATE TABLE audit_events (
    seq          BIGINT PRIMARY KEY NOT NULL,
    at           TEXT COLLATE "C" NOT NULL,
    kind         TEXT NOT NULL,
    actor        TEXT NOT NULL,
    via          TEXT NOT NULL,
    upstream     TEXT,
    tool         TEXT,
    call_id      TEXT COLLATE "C",
    args_digest  TEXT,
    detail       TEXT,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);

CREATE INDEX audit_events_call ON audit_events (call_id, seq);

CREATE TABLE audit_head (
    id    BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);

INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
