-- Parked calls that outlive the request that parked them.
--
-- A call belongs to its key: the SHA-256 over (agent, agent token's SHA-256, upstream, tool,
-- argument digest), src/domain/digest.rs. While it is pending, or approved and not yet picked up,
-- a tools/call with the same key joins it; at most one such open row per key, on any instance.
-- pickup_by: for an approved call, when it ends `unclaimed`; for a rejected, expired or unclaimed
-- one, until when the next call with its key is told why it did not run. told_at: when a request
-- received that text (the key is then free for a new call). Calls parked before this migration
-- have no key: nothing joins them, and they end as before (decided, expired or unclaimed).
ALTER TABLE tool_calls ADD COLUMN attach_key TEXT;
ALTER TABLE tool_calls ADD COLUMN pickup_by TEXT;
ALTER TABLE tool_calls ADD COLUMN told_at TEXT;
CREATE UNIQUE INDEX tool_calls_attach_open ON tool_calls (attach_key)
    WHERE status IN ('pending', 'approved');
CREATE INDEX tool_calls_attach ON tool_calls (attach_key, id);
