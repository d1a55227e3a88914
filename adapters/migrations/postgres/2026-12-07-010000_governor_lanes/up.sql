-- Cloud side, several instances: the call governor's lanes shared through the database
-- (adapters/src/outbound/governor.rs, docs/design.md "Several instances"). One row per
-- (app, API): the earliest instant, in microseconds since the epoch on the database's clock,
-- the lane's next call may start.
CREATE TABLE governor_lanes (
    app        TEXT NOT NULL,
    api        TEXT NOT NULL,
    next_at_us BIGINT NOT NULL,
    PRIMARY KEY (app, api)
);
