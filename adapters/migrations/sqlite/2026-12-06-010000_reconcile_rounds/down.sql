ALTER TABLE relay_messages DROP COLUMN reconcile_rounds;
