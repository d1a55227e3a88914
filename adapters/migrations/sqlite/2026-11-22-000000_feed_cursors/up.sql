-- Local side: how far each followed feed has been applied (FeedCursorStore), so a restart
-- resumes right after the last applied event. One row per feed name.
CREATE TABLE feed_cursors (
    name       TEXT PRIMARY KEY NOT NULL,  -- e.g. 'contact_events'
    cursor     INTEGER NOT NULL,           -- the last applied event's cursor
    updated_at INTEGER NOT NULL            -- epoch ms
);
