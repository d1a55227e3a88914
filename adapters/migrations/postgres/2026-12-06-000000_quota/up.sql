-- Cloud side: metered DingTalk API calls per corp per month (QuotaStore; docs/dingtalk-api.md §G.3).
-- month is YYYY-MM in China Standard Time (DingTalk's billing month); rows of past months stay.
CREATE TABLE quota_usage (
    tenant        TEXT NOT NULL,                    -- the corp_id the calls count against
    month         TEXT NOT NULL,                    -- e.g. '2026-12'
    metered_calls BIGINT NOT NULL DEFAULT 0,
    exhausted     BOOLEAN NOT NULL DEFAULT FALSE,   -- DingTalk answered 90020 and no operator resumed
    updated_at    BIGINT NOT NULL,                    -- epoch ms
    PRIMARY KEY (tenant, month)
);
