DROP INDEX relay_messages_due;
ALTER TABLE relay_messages DROP COLUMN retry_at;
ALTER TABLE relay_messages DROP COLUMN waiting_detail;
ALTER TABLE relay_messages DROP COLUMN waiting;
ALTER TABLE relay_messages DROP COLUMN attempts;
