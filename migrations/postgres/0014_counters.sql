-- Policy counters (Intercept's `state` blocks and `rate_limit: N/hour`): one row per counter
-- and calendar window (UTC). `counter_key` is the SHA-256 of (agent, upstream, scope, counter), so
-- every agent counts on its own and every instance sees the same count. A reservation adds to
-- `value` before a call is forwarded and is taken back when the upstream answers with an error;
-- rows of windows that have ended are removed when the counter is next reserved.
CREATE TABLE policy_counters (
    counter_key   TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    value         BIGINT NOT NULL,
    PRIMARY KEY (counter_key, window_start)
);
