-- Providers side by side (docs/design.md "Providers side by side"): every user and every login
-- records the identity provider it belongs to. Existing rows are DingTalk's, the only provider
-- before. A corp (tenant) belongs to one provider, so the existing keys (corp_id, union_id) and
-- (corp_id, userid) stay the users' keys.
ALTER TABLE users ADD COLUMN provider TEXT NOT NULL DEFAULT 'dingtalk';
ALTER TABLE login_attempts ADD COLUMN provider TEXT NOT NULL DEFAULT 'dingtalk';
ALTER TABLE login_intents ADD COLUMN provider TEXT NOT NULL DEFAULT 'dingtalk';
-- The PKCE code_verifier (RFC 7636) of the login; NULL for intents stored before.
ALTER TABLE login_intents ADD COLUMN code_verifier TEXT;
