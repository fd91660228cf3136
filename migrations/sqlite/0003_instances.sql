-- Airlock instances sharing this database, with a heartbeat. Each parked call names the instance
-- holding its agent's request (tool_calls.instance_id); when an instance's heartbeat stops, the
-- others abandon its waiting calls after a grace period, and it abandons its own when it restarts.
CREATE TABLE instances (
    id            TEXT PRIMARY KEY NOT NULL,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL
);
