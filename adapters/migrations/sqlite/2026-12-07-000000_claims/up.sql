-- Cloud side: several instances share the background sender's queue (docs/design.md "Several
-- instances"). A sender claims a due message for a lease (`claim` = its token, `claimed_until`
-- epoch ms); others skip it until the lease ends. Before each provider call the batch's
-- `started_at` (epoch ms) is set under the claim; a batch with `started_at` and neither a task id
-- nor an error was started by a sender that stopped mid-call (an *uncertain* batch).
ALTER TABLE relay_messages ADD COLUMN claim TEXT;
ALTER TABLE relay_messages ADD COLUMN claimed_until BIGINT;
ALTER TABLE relay_batches ADD COLUMN started_at BIGINT;
