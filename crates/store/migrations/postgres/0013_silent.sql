-- Silent (SIM-based) checks: one per silent or auto verification. The check_url's token is kept
-- only as its SHA-256; the provider's device URL is sealed with the server secret.
CREATE TABLE silent_checks (
    id                TEXT PRIMARY KEY,
    verification_id   TEXT NOT NULL UNIQUE,
    provider          TEXT NOT NULL,
    provider_ref      TEXT,
    device_url_sealed BYTEA,
    token_digest      BYTEA NOT NULL UNIQUE,
    state             TEXT NOT NULL,
    reason            TEXT,
    fallback          INTEGER NOT NULL,
    return_path       TEXT,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    opened_at         BIGINT,
    finished_at       BIGINT
);
CREATE UNIQUE INDEX silent_checks_ref ON silent_checks (provider, provider_ref);
CREATE INDEX silent_checks_live ON silent_checks (expires_at) WHERE state IN ('created', 'opened');
