-- Cloud side: how many background reconciliation rounds (one getsendprogress call per task each,
-- metered: docs/dingtalk-api.md §G.3) a relayed message has had, so delivery.reconcile = "budget"
-- never spends more than its budget on one message.
ALTER TABLE relay_messages ADD COLUMN reconcile_rounds INTEGER NOT NULL DEFAULT 0;
