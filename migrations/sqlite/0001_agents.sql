-- Agents and their bearer tokens. Only the SHA-256 of a token is stored: a leaked database does not
-- leak a working token.
CREATE TABLE agents (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE agent_tokens (
    id            TEXT PRIMARY KEY NOT NULL,
    agent_id      TEXT NOT NULL REFERENCES agents (id),
    token_sha256  TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT
);

CREATE INDEX agent_tokens_agent ON agent_tokens (agent_id);
