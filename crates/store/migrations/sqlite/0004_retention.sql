-- Retention sweeps find ended verifications by age.
CREATE INDEX verifications_ended ON verifications (updated_at) WHERE status <> 'pending';
CREATE INDEX outbox_messages_created ON outbox_messages (created_at);
CREATE INDEX inbound_messages_received ON inbound_messages (received_at);
