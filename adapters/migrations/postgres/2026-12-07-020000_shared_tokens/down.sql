DROP TABLE shared_tokens;
