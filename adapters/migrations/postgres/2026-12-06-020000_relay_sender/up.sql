-- Cloud side: the background sender's queue (docs/design.md "The relay's write path"). Accepting a
-- relayed message only records it; the sender attempts every `accepted` message whose next attempt
-- is due. An attempt that ends transiently records why the message waits (`throttled`,
-- `waiting_quota`, `ip_banned`, `unavailable`), a detail for people, and when the next is due.
ALTER TABLE relay_messages ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE relay_messages ADD COLUMN waiting TEXT;
ALTER TABLE relay_messages ADD COLUMN waiting_detail TEXT;
-- Epoch ms; NULL until an attempt ended waiting (due at once).
ALTER TABLE relay_messages ADD COLUMN retry_at BIGINT;
CREATE INDEX relay_messages_due ON relay_messages (state, retry_at);
