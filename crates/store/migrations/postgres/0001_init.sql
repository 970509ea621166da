-- phonegate schema v1 (PostgreSQL). Timestamps are milliseconds since the Unix epoch, UTC, as in
-- the SQLite schema, so both backends share one row format.
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE services (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    code_length   INTEGER NOT NULL,
    code_ttl_secs BIGINT NOT NULL,
    templates     TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE verifications (
    id                      TEXT PRIMARY KEY,
    service_id              TEXT NOT NULL REFERENCES services(id),
    to_number               TEXT NOT NULL,
    channel                 TEXT NOT NULL,
    locale                  TEXT NOT NULL,
    status                  TEXT NOT NULL,
    code_length             INTEGER NOT NULL,
    code_digest             BYTEA NOT NULL,
    code_sealed             BYTEA NOT NULL,
    attempts                INTEGER NOT NULL,
    sends                   INTEGER NOT NULL,
    send_window_started_at  BIGINT NOT NULL,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    expires_at              BIGINT NOT NULL,
    approved_at             BIGINT,
    canceled_at             BIGINT,
    expired_at              BIGINT,
    max_attempts_reached_at BIGINT,
    failed_at               BIGINT,
    failure_reason          TEXT,
    version                 BIGINT NOT NULL
);

CREATE UNIQUE INDEX verifications_one_pending ON verifications (service_id, to_number) WHERE status = 'pending';
CREATE INDEX verifications_pending_expiry ON verifications (expires_at) WHERE status = 'pending';

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE outbox_messages (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    to_number       TEXT NOT NULL,
    body            TEXT NOT NULL,
    verification_id TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX outbox_messages_to ON outbox_messages (to_number, seq);
