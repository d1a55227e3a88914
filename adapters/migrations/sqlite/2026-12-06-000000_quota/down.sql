DROP TABLE quota_usage;
