ALTER TABLE relay_batches DROP COLUMN skipped;
DROP TABLE recipient_contents;
DROP TABLE recipient_days;
