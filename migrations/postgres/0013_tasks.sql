-- MCP tasks (2025-11-25) for parked calls (PostgreSQL twin of migrations/sqlite/0013_tasks.sql):
-- a task-augmented tools/call that parks is answered at once with a task, which its agent polls (tasks/get), waits on (tasks/result) or cancels. The
-- task id is a random token handed to the agent; only its SHA-256 is stored, with the SHA-256 of
-- the agent token it was created with: another agent (or token) cannot read it. Results are never
-- stored (they stay in the memory of the process that ran the call, until delivered once).
CREATE TABLE tasks (
    id_sha256     TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    call_id       TEXT COLLATE "C" NOT NULL REFERENCES tool_calls (id),
    token_sha256  TEXT COLLATE "C" NOT NULL,
    created_at    TEXT COLLATE "C" NOT NULL,
    ttl_ms        BIGINT NOT NULL
);
CREATE INDEX tasks_token ON tasks (token_sha256, created_at);
CREATE INDEX tasks_call ON tasks (call_id);
