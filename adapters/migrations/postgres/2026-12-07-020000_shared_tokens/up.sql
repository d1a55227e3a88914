-- Cloud side, several instances: DingTalk app and corp tokens shared through the database
-- (adapters/src/outbound/dingtalk/token.rs, docs/design.md "Several instances"), so one instance
-- at a time fetches each and the others adopt it. `key` is `app:<client_id>` or
-- `corp:<suite_key>:<corp_id>`; `expires_at` epoch ms. Like the suite tickets, the tokens are
-- secrets of the cloud's database.
CREATE TABLE shared_tokens (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
