-- Verifications of test numbers: a fixed code, messages recorded and never sent.
ALTER TABLE verifications ADD COLUMN test INTEGER NOT NULL DEFAULT 0;
-- The dev outbox lists the messages test numbers were given too (their provider is 'test').
DROP INDEX messages_outbox_to;
DROP INDEX messages_outbox;
CREATE INDEX messages_outbox_to ON messages (to_number, created_at) WHERE provider IN ('outbox', 'test');
CREATE INDEX messages_outbox ON messages (created_at) WHERE provider IN ('outbox', 'test');
