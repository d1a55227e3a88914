DROP TABLE governor_lanes;
