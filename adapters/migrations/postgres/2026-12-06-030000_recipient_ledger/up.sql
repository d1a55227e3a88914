-- Cloud side: no silent drops (docs/dingtalk-api.md §D.6). DingTalk answers success and does not
-- deliver a work notification past 500 a day per person per app (100 for a third-party app) or the
-- same content to the same person twice a day; the cloud counts what each person received per
-- corp and day (China Standard Time) and skips such recipients, reporting them.
CREATE TABLE recipient_days (
    tenant   TEXT NOT NULL,            -- corp id
    day      TEXT NOT NULL,            -- YYYY-MM-DD in the provider's time zone
    userid   TEXT NOT NULL,
    received BIGINT NOT NULL,
    PRIMARY KEY (tenant, day, userid)
);
CREATE TABLE recipient_contents (
    tenant  TEXT NOT NULL,
    day     TEXT NOT NULL,
    userid  TEXT NOT NULL,
    content TEXT NOT NULL,             -- SHA-256 of the canonical message body, hex
    PRIMARY KEY (tenant, day, userid, content)
);
-- The recipients of a batch the cloud skipped: JSON [{"userid": "...", "reason": "daily_limit"}].
ALTER TABLE relay_batches ADD COLUMN skipped TEXT NOT NULL DEFAULT '[]';
