-- Security hardening (PostgreSQL twin of migrations/sqlite/0011_security.sql).
--
-- Failed sign-ins are throttled per client address as well as per email.
ALTER TABLE login_failures ADD COLUMN client TEXT COLLATE "C";
CREATE INDEX login_failures_client ON login_failures (client, at);
