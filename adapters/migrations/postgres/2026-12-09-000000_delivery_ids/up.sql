-- Delivery ids (docs/design.md "Providers side by side"): what a provider returns for one send
-- is text, opaque to the core (DingTalk's numeric task_id in decimal; Feishu's message ids).
-- Existing DingTalk task ids are kept as their decimal text.
ALTER TABLE relay_batches ALTER COLUMN task_id TYPE TEXT USING task_id::text;
ALTER TABLE relay_batches RENAME COLUMN task_id TO delivery_id;
-- The local outbox's JSON array of task ids (numbers) now holds delivery ids; the reader accepts
-- the numbers stored before.
ALTER TABLE messages RENAME COLUMN task_ids TO delivery_ids;
