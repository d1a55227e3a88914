ALTER TABLE messages RENAME COLUMN delivery_ids TO task_ids;
ALTER TABLE relay_batches ADD COLUMN task_id INTEGER;
UPDATE relay_batches SET task_id = CAST(delivery_id AS INTEGER) WHERE delivery_id GLOB '[0-9]*';
ALTER TABLE relay_batches DROP COLUMN delivery_id;
