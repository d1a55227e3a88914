DROP INDEX messages_created_idx;
DROP INDEX messages_due_idx;
DROP INDEX messages_idempotency_key_key;
ALTER TABLE messages DROP COLUMN finished_at;
ALTER TABLE messages DROP COLUMN sent_at;
ALTER TABLE messages DROP COLUMN relayed_at;
ALTER TABLE messages DROP COLUMN next_attempt_at;
ALTER TABLE messages DROP COLUMN attempts;
ALTER TABLE messages DROP COLUMN idempotency_key;
