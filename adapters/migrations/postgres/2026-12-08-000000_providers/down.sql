ALTER TABLE login_intents DROP COLUMN code_verifier;
ALTER TABLE login_intents DROP COLUMN provider;
ALTER TABLE login_attempts DROP COLUMN provider;
ALTER TABLE users DROP COLUMN provider;
