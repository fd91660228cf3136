-- Agents and their bearer tokens (PostgreSQL twin of migrations/sqlite/0001_agents.sql). Only the
-- SHA-256 of a token is stored: a leaked database does not leak a working token.
-- Ids and times are text with a fixed format; COLLATE "C" makes them compare byte by byte, as on
-- SQLite, whatever the database's locale.
CREATE TABLE agents (
    id          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT COLLATE "C" NOT NULL
);

CREATE TABLE agent_tokens (
    id            TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    agent_id      TEXT COLLATE "C" NOT NULL REFERENCES agents (id),
    token_sha256  TEXT NOT NULL UNIQUE,
    created_at    TEXT COLLATE "C" NOT NULL,
    revoked_at    TEXT COLLATE "C"
);

CREATE INDEX agent_tokens_agent ON agent_tokens (agent_id);
