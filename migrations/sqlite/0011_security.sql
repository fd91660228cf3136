-- Security hardening (issue "close what an adversarial review of the live demo found").
--
-- Failed sign-ins are throttled per client address as well as per email.
ALTER TABLE login_failures ADD COLUMN client TEXT;
CREATE INDEX login_failures_client ON login_failures (client, at);
