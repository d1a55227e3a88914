-- Cloud side: DingTalk event callbacks (SuiteStore, EventStore).
-- Timestamps are INTEGER epoch milliseconds; id lists are JSON arrays in TEXT.

-- The latest suite_ticket of each suite (one row per suite key, no expiry).
CREATE TABLE suite_tickets (
    suite_key  TEXT PRIMARY KEY NOT NULL,
    ticket     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Corp authorizations of a third-party suite; active = 0 once relieved.
CREATE TABLE corp_authorizations (
    suite_key      TEXT NOT NULL,
    corp_id        TEXT NOT NULL,
    agent_id       INTEGER NULL,
    permanent_code TEXT NULL,              -- a secret
    active         BOOLEAN NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (suite_key, corp_id)
);

-- Replay protection: callback nonces seen per owner, remembered until keep_until.
CREATE TABLE callback_nonces (
    owner      TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    keep_until INTEGER NOT NULL,
    PRIMARY KEY (owner, nonce)
);
CREATE INDEX callback_nonces_keep_until ON callback_nonces (keep_until);

-- The contact-event feed. seq is the feed cursor: AUTOINCREMENT never reuses a value,
-- so cursors strictly increase even after deletions.
CREATE TABLE contact_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    corp_id     TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    userids     TEXT NOT NULL,             -- JSON array of userid strings
    dept_ids    TEXT NOT NULL,             -- JSON array of numbers
    received_at INTEGER NOT NULL,
    CONSTRAINT contact_events_corp_event_key UNIQUE (corp_id, event_id)
);
CREATE INDEX contact_events_corp_seq ON contact_events (corp_id, seq);
