-- Local side: how far each followed feed has been applied (FeedCursorStore), as in
-- migrations/sqlite. One row per feed name.
CREATE TABLE feed_cursors (
    name       TEXT PRIMARY KEY,           -- e.g. 'contact_events'
    cursor     BIGINT NOT NULL,            -- the last applied event's cursor
    updated_at BIGINT NOT NULL             -- epoch ms
);
