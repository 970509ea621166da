-- Outbound message queue, delivery receipts, inbound messages and opt-outs.
CREATE TABLE messages (
    id                  TEXT PRIMARY KEY,
    verification_id     TEXT REFERENCES verifications(id),
    service             TEXT,
    to_number           TEXT NOT NULL,
    body_sealed         BYTEA NOT NULL,
    resend              BOOLEAN NOT NULL,
    status              TEXT NOT NULL,
    provider            TEXT,
    provider_message_id TEXT,
    error               TEXT,
    claims              INTEGER NOT NULL DEFAULT 0,
    lease_token         TEXT,
    lease_until         BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX messages_due ON messages (status, lease_until) WHERE status IN ('queued', 'sending');
CREATE INDEX messages_verification ON messages (verification_id);
CREATE INDEX messages_provider_id ON messages (provider_message_id) WHERE provider_message_id IS NOT NULL;

CREATE TABLE inbound_messages (
    id                  TEXT PRIMARY KEY,
    provider            TEXT NOT NULL,
    provider_message_id TEXT NOT NULL,
    from_number         TEXT NOT NULL,
    to_number           TEXT NOT NULL,
    body                TEXT NOT NULL,
    received_at         BIGINT NOT NULL,
    UNIQUE (provider, provider_message_id)
);

CREATE TABLE opt_outs (
    number     TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
