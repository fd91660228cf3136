-- The history chart counts decisions per day and status: with the status in the index, that is a
-- range of the index alone, the table unread (issue 19: a million calls).
CREATE INDEX tool_calls_decided_status ON tool_calls (decided_at, status);
DROP INDEX tool_calls_decided;
