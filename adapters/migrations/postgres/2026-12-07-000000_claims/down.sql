ALTER TABLE relay_batches DROP COLUMN started_at;
ALTER TABLE relay_messages DROP COLUMN claimed_until;
ALTER TABLE relay_messages DROP COLUMN claim;
