-- dingbridge stores on PostgreSQL: the tables of migrations/sqlite with the
-- same names, columns and constraint names, so both adapters share one diesel
-- schema and one set of row structs. Every timestamp is BIGINT epoch
-- milliseconds; lists are JSON arrays in TEXT columns; ids are TEXT.
-- Primary keys get PostgreSQL's default names (<table>_pkey).

-- Local side: logins in progress (LoginAttemptStore).
CREATE TABLE login_attempts (
    state_hash TEXT PRIMARY KEY,
    return_to  TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX login_attempts_expires_at ON login_attempts (expires_at);

-- Cloud side: logins a relay client started (LoginIntentStore).
CREATE TABLE login_intents (
    state_hash   TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL,
    complete_url TEXT NOT NULL,
    corp_ids     TEXT NOT NULL,            -- JSON array of corp id strings
    expires_at   BIGINT NOT NULL
);
CREATE INDEX login_intents_expires_at ON login_intents (expires_at);

-- Cloud side: finished logins waiting for their relay client (LoginResultStore).
CREATE TABLE login_results (
    state_hash TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    outcome    TEXT NOT NULL,              -- JSON of Result<MemberProfile, LoginFailure>
    expires_at BIGINT NOT NULL
);
CREATE INDEX login_results_expires_at ON login_results (expires_at);

-- Local side: users keyed by (corp_id, union_id) (UserRepository).
CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    corp_id    TEXT NOT NULL,
    union_id   TEXT NOT NULL,
    userid     TEXT NOT NULL,
    open_id    TEXT,
    name       TEXT NOT NULL,
    avatar_url TEXT,
    title      TEXT,
    org_email  TEXT,
    email      TEXT,
    mobile     TEXT,
    dept_ids   TEXT NOT NULL,              -- JSON array of numbers
    active     BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT users_corp_union_key UNIQUE (corp_id, union_id),
    CONSTRAINT users_corp_userid_key UNIQUE (corp_id, userid)
);
CREATE INDEX users_created_at_id ON users (created_at, id);

-- Local side: browser sessions, by token hash (SessionStore).
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id);

-- Local side: messages callers asked to send (MessageStore).
CREATE TABLE messages (
    id         TEXT PRIMARY KEY,
    corp_id    TEXT NOT NULL,
    body       TEXT NOT NULL,              -- DingTalk's msg JSON
    user_ids   TEXT NOT NULL,              -- JSON array of userid strings
    dept_ids   TEXT NOT NULL,              -- JSON array of numbers
    to_all     BOOLEAN NOT NULL,
    state      TEXT NOT NULL,
    task_ids   TEXT NOT NULL,              -- JSON array of numbers
    error      TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Cloud side: messages relay clients asked to send (RelayMessageStore).
CREATE TABLE relay_messages (
    client_id  TEXT NOT NULL,
    "key"      TEXT NOT NULL,
    corp_id    TEXT NOT NULL,
    body       TEXT NOT NULL,              -- DingTalk's msg JSON
    state      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, "key")
);

-- One row per asyncsend_v2 call of a relay message, idx 0-based.
CREATE TABLE relay_batches (
    client_id TEXT NOT NULL,
    "key"     TEXT NOT NULL,
    idx       INTEGER NOT NULL,
    user_ids  TEXT NOT NULL,               -- JSON array of userid strings
    dept_ids  TEXT NOT NULL,               -- JSON array of numbers
    to_all    BOOLEAN NOT NULL,
    task_id   BIGINT,
    error     TEXT,
    PRIMARY KEY (client_id, "key", idx),
    FOREIGN KEY (client_id, "key") REFERENCES relay_messages (client_id, "key") ON DELETE CASCADE
);
