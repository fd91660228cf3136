-- Reviewers, their API tokens, and the approval queue (PostgreSQL twin of
-- migrations/sqlite/0002_approvals.sql: the same tables, BIGINT for integers, and COLLATE "C" on
-- ids and times so they compare byte by byte).
--
-- A parked call is one `tool_calls` row; its status moves only along the state machine in
-- src/approval/state.rs, by conditional updates (`... WHERE status = <expected>`), so a call leaves
-- `pending` exactly once. `call_events` keeps every transition (who, when, why); `call_approvals`
-- holds one row per reviewer, so the same reviewer cannot count twice toward a quorum.

CREATE TABLE users (
    id             TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    email          TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'approver', 'viewer')),
    password_hash  TEXT,
    disabled_at    TEXT COLLATE "C",
    created_at     TEXT COLLATE "C" NOT NULL
);

-- Only the SHA-256 of a reviewer API token is stored.
CREATE TABLE user_tokens (
    id            TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    user_id       TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    token_sha256  TEXT NOT NULL UNIQUE,
    created_at    TEXT COLLATE "C" NOT NULL,
    revoked_at    TEXT COLLATE "C"
);

CREATE INDEX user_tokens_user ON user_tokens (user_id);

CREATE TABLE tool_calls (
    id                TEXT COLLATE "C" PRIMARY KEY NOT NULL,   -- UUIDv7: sorts by creation time
    upstream          TEXT NOT NULL,
    tool              TEXT NOT NULL,
    agent             TEXT NOT NULL,
    agent_session     TEXT NOT NULL,               -- a digest of the session id, never the id
    instance_id       TEXT NOT NULL,               -- the Airlock process holding the agent's request
    args_json         TEXT NOT NULL,               -- the arguments as the agent sent them
    args_sha256       TEXT NOT NULL,               -- over their canonical form: what approval binds to
    rule_json         TEXT NOT NULL,               -- the rule as it was when the call was parked
    approvals_needed  BIGINT NOT NULL,
    status            TEXT NOT NULL,
    created_at        TEXT COLLATE "C" NOT NULL,
    expires_at        TEXT COLLATE "C" NOT NULL,
    decided_at        TEXT COLLATE "C",
    decided_by        TEXT,
    reason            TEXT,
    finished_at       TEXT COLLATE "C",
    result_bytes      BIGINT,                      -- results are never stored: size and digest only
    result_sha256     TEXT,
    result_is_error   BIGINT                       -- 1 when the result had isError: true
);

CREATE INDEX tool_calls_status ON tool_calls (status, id);

CREATE TABLE call_approvals (
    call_id   TEXT COLLATE "C" NOT NULL REFERENCES tool_calls (id),
    reviewer  TEXT NOT NULL,
    via       TEXT NOT NULL,
    reason    TEXT,
    at        TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (call_id, reviewer)
);

CREATE TABLE call_events (
    seq      BIGSERIAL PRIMARY KEY,
    call_id  TEXT COLLATE "C" NOT NULL REFERENCES tool_calls (id),
    at       TEXT COLLATE "C" NOT NULL,
    kind     TEXT NOT NULL,   -- the status entered, or 'approval' for one reviewer's vote
    actor    TEXT NOT NULL,   -- agent:NAME, a user's email, cli, or system
    via      TEXT NOT NULL,   -- mcp, api, cli, dashboard, email, system
    detail   TEXT
);

CREATE INDEX call_events_call ON call_events (call_id, seq);
