-- Searching the audit log (the dashboard's events page, `airlock audit export --agent`) and
-- pruning it (`[audit] retain_days`). Every call's first event is the agent's (actor
-- `agent:NAME`), so an agent's calls are found through it. Pruning deletes the oldest events and
-- keeps the number and hash of the last one deleted, which the first kept event must follow.
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_kind ON audit_events (kind, seq);

ALTER TABLE audit_head ADD COLUMN pruned_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit_head ADD COLUMN pruned_hash TEXT NOT NULL
    DEFAULT '0000000000000000000000000000000000000000000000000000000000000000';

-- A call's arguments as people may see them (redaction rules applied when it was parked). While
-- the call is open, args_json holds the real arguments it will be forwarded with; when it ends,
-- args_json is overwritten with this copy, so secrets do not outlive the call (only the digest).
ALTER TABLE tool_calls ADD COLUMN args_shown TEXT;
