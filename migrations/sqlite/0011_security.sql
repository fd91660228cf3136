-- Security hardening (issue "close what an adversarial review of the live demo found").
--
-- Failed sign-ins are throttled per client address as well as per email.
ALTER TABLE login_failures ADD COLUMN client TEXT;
CREATE INDEX login_failures_client ON login_failures (client, at);

-- Review links are random tokens of which only the SHA-256 is stored: nothing in this database
-- decides a call. The signing key that used to live here (readable by anyone with the file)
-- goes, and with it every link it signed; outbox bodies hold placeholders where links go, and
-- tokens are minted when a message is sent (src/notify/links.rs). Messages stored before this
-- migration held live links: their bodies are replaced by a note (their links died with the key).
CREATE TABLE review_links (
    token_sha256  TEXT PRIMARY KEY NOT NULL,
    call_id       TEXT NOT NULL REFERENCES tool_calls (id),
    reviewer      TEXT NOT NULL,
    action        TEXT NOT NULL CHECK (action IN ('approve', 'reject')),
    args_digest   TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    used_at       TEXT,
    slot          TEXT      -- the message place it fills (a newer link there replaces it)
);
CREATE INDEX review_links_expiry ON review_links (expires_at);
CREATE INDEX review_links_slot ON review_links (slot);

DROP TABLE used_review_links;
DROP TABLE server_secrets;

UPDATE outbox SET
    body = 'This message held review links signed with a key Airlock no longer keeps; they no longer work. Open the call from the dashboard.',
    html = NULL
WHERE body LIKE '%/review/%' OR html LIKE '%/review/%';

ALTER TABLE outbox ADD COLUMN link_slot TEXT;

-- Parking is bounded ([approval] max_pending_per_agent, max_pending: open rows are counted per
-- agent), and many calls parking at once are told in one message per recipient per minute: the
-- first call's own message, then a digest listing the calls of the next minute (outbox_calls),
-- rendered when it is sent. `kind` says what a message is; `notify_at` when a call's or digest's
-- message is due to go first.
ALTER TABLE outbox ADD COLUMN kind TEXT;
ALTER TABLE outbox ADD COLUMN notify_at TEXT;
CREATE INDEX outbox_recipient ON outbox (recipient, kind, notify_at);

CREATE TABLE outbox_calls (
    mail_id  TEXT NOT NULL REFERENCES outbox (id),
    call_id  TEXT NOT NULL REFERENCES tool_calls (id),
    PRIMARY KEY (mail_id, call_id)
);
CREATE INDEX outbox_calls_call ON outbox_calls (call_id);

CREATE INDEX tool_calls_agent_status ON tool_calls (agent, status);

-- An admin's password reset mails the user a one-time link to set a new one (the admin never
-- sees a password); only the SHA-256 of the link's token is stored, as for review links.
CREATE TABLE password_links (
    token_sha256  TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id),
    expires_at    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    used_at       TEXT,
    slot          TEXT
);
CREATE INDEX password_links_user ON password_links (user_id);
CREATE INDEX password_links_slot ON password_links (slot);
