-- Rate-limit slots shared by instances (used on PostgreSQL for limits keyed by agent token, which
-- a load balancer spreads over instances; the table exists on SQLite to keep the schemas alike).
-- One row per counted call; `bucket` is a digest of (agent key, upstream, tool).
CREATE TABLE rate_slots (
    id          TEXT PRIMARY KEY NOT NULL,
    bucket      TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);

CREATE INDEX rate_slots_bucket ON rate_slots (bucket, expires_at);
CREATE INDEX rate_slots_expiry ON rate_slots (expires_at);
