-- phonegate schema v1 (SQLite). Timestamps are milliseconds since the Unix epoch, UTC.
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE services (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    code_length   INTEGER NOT NULL,
    code_ttl_secs INTEGER NOT NULL,
    templates     TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE verifications (
    id                      TEXT PRIMARY KEY,
    service_id              TEXT NOT NULL REFERENCES services(id),
    to_number               TEXT NOT NULL,
    channel                 TEXT NOT NULL,
    locale                  TEXT NOT NULL,
    status                  TEXT NOT NULL,
    code_length             INTEGER NOT NULL,
    code_digest             BLOB NOT NULL,
    code_sealed             BLOB NOT NULL,
    attempts                INTEGER NOT NULL,
    sends                   INTEGER NOT NULL,
    send_window_started_at  INTEGER NOT NULL,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL,
    expires_at              INTEGER NOT NULL,
    approved_at             INTEGER,
    canceled_at             INTEGER,
    expired_at              INTEGER,
    max_attempts_reached_at INTEGER,
    failed_at               INTEGER,
    failure_reason          TEXT,
    version                 INTEGER NOT NULL
);

-- At most one pending verification per service and number: a second start re-sends it.
CREATE UNIQUE INDEX verifications_one_pending ON verifications (service_id, to_number) WHERE status = 'pending';
CREATE INDEX verifications_pending_expiry ON verifications (expires_at) WHERE status = 'pending';

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE outbox_messages (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    to_number       TEXT NOT NULL,
    body            TEXT NOT NULL,
    verification_id TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX outbox_messages_to ON outbox_messages (to_number, seq);
