-- The dashboard (PostgreSQL twin of migrations/sqlite/0007_dashboard.sql): reviewers' browser
-- sessions, failed sign-ins (for throttling), and labels on personal API tokens.
--
-- Only the SHA-256 of a session cookie is stored; `csrf` is the token every form of that session
-- must carry. A session ends at `expires_at`, on sign-out, or when its user is disabled or gets a
-- new password (the rows are deleted).

CREATE TABLE user_sessions (
    id_sha256   TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    csrf        TEXT NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL,
    expires_at  TEXT COLLATE "C" NOT NULL
);

CREATE INDEX user_sessions_user ON user_sessions (user_id);

-- One row per failed sign-in, by the email typed (known or not, so throttling tells nothing).
CREATE TABLE login_failures (
    seq    BIGSERIAL PRIMARY KEY,
    email  TEXT NOT NULL,
    at     TEXT COLLATE "C" NOT NULL
);

CREATE INDEX login_failures_email ON login_failures (email, at);

ALTER TABLE user_tokens ADD COLUMN label TEXT;

-- The history page filters by these and pages by id.
CREATE INDEX tool_calls_upstream ON tool_calls (upstream, id);
CREATE INDEX tool_calls_agent ON tool_calls (agent, id);
CREATE INDEX tool_calls_decided ON tool_calls (decided_at);
