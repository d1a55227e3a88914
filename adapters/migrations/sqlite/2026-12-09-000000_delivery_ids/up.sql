-- Delivery ids (docs/design.md "Providers side by side"): what a provider returns for one send
-- is text, opaque to the core (DingTalk's numeric task_id in decimal; Feishu's message ids).
-- Existing DingTalk task ids are kept as their decimal text.
ALTER TABLE relay_batches ADD COLUMN delivery_id TEXT;
UPDATE relay_batches SET delivery_id = CAST(task_id AS TEXT) WHERE task_id IS NOT NULL;
ALTER TABLE relay_batches DROP COLUMN task_id;
-- The local outbox's JSON array of task ids (numbers) now holds delivery ids; the reader accepts
-- the numbers stored before.
ALTER TABLE messages RENAME COLUMN task_ids TO delivery_ids;
