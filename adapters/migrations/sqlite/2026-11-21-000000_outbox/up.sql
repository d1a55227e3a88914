-- The local outbox: idempotency keys, dispatch scheduling and state timestamps.
ALTER TABLE messages ADD COLUMN idempotency_key TEXT NULL;
ALTER TABLE messages ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN relayed_at INTEGER NULL;
ALTER TABLE messages ADD COLUMN sent_at INTEGER NULL;
ALTER TABLE messages ADD COLUMN finished_at INTEGER NULL;
CREATE UNIQUE INDEX messages_idempotency_key_key ON messages (idempotency_key);
CREATE INDEX messages_due_idx ON messages (state, next_attempt_at);
CREATE INDEX messages_created_idx ON messages (created_at);
