-- The dev outbox keeps no copy of its own: the messages it took are the queue's rows with
-- provider 'outbox' (bodies sealed like every other message's). Its old clear-text copies go.
DROP TABLE outbox_messages;
CREATE INDEX messages_outbox_to ON messages (to_number, created_at) WHERE provider = 'outbox';
CREATE INDEX messages_outbox ON messages (created_at) WHERE provider = 'outbox';
