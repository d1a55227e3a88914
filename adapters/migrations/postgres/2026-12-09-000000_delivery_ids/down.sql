ALTER TABLE messages RENAME COLUMN delivery_ids TO task_ids;
ALTER TABLE relay_batches RENAME COLUMN delivery_id TO task_id;
ALTER TABLE relay_batches ALTER COLUMN task_id TYPE BIGINT USING (CASE WHEN task_id ~ '^[0-9]+$' THEN task_id::bigint END);
