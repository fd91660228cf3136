-- Tool-definition pinning (rug-pull detection): per upstream and tool, the definition an admin
-- accepted (or that was accepted the first time the upstream's tools were seen) and the latest
-- one seen. A tool whose latest definition is not the accepted one is quarantined: removed from
-- tools/list and its calls refused until an admin accepts the change. Definitions are the
-- canonical JSON of name, title, description, inputSchema, outputSchema and annotations.
CREATE TABLE tool_pins (
    upstream             TEXT NOT NULL,
    tool                 TEXT NOT NULL,
    accepted_digest      TEXT,
    accepted_definition  TEXT,
    accepted_at          TEXT,
    accepted_by          TEXT,
    seen_digest          TEXT NOT NULL,
    seen_definition      TEXT NOT NULL,
    seen_at              TEXT NOT NULL,
    PRIMARY KEY (upstream, tool)
);
