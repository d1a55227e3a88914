DROP TABLE relay_batches;
DROP TABLE relay_messages;
DROP TABLE messages;
DROP TABLE sessions;
DROP TABLE users;
DROP TABLE login_results;
DROP TABLE login_intents;
DROP TABLE login_attempts;
