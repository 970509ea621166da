-- Vonage Verify v2: an API key's application (its RS256 public key, whose JWTs authenticate as
-- the key; the status webhook and the secret its callbacks are signed with, sealed with the
-- server key).
CREATE TABLE vonage_applications (
    id               TEXT PRIMARY KEY,
    key_id           TEXT NOT NULL UNIQUE REFERENCES api_keys(id),
    public_key       TEXT NOT NULL,
    status_url       TEXT,
    signature_secret BYTEA,
    created_at       BIGINT NOT NULL
);

-- The status callbacks owed to applications: a summary waits for its verification to end, an
-- event is due at once. Claimed with a lease and retried with growing pauses, like account events.
CREATE TABLE vonage_callbacks (
    id              TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL,
    verification_id TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    due_at          BIGINT NOT NULL,
    lease_token     TEXT,
    done_at         BIGINT
);
CREATE INDEX vonage_callbacks_due ON vonage_callbacks (due_at) WHERE done_at IS NULL;
-- Retention removes the delivered ones.
CREATE INDEX vonage_callbacks_done ON vonage_callbacks (done_at) WHERE done_at IS NOT NULL;

-- Vonage templates: named sets of texts per channel and locale, owned by a service; a start
-- naming one writes its messages from them. The service's default texts stay its own templates.
CREATE TABLE vonage_templates (
    id         TEXT PRIMARY KEY,
    service_id TEXT NOT NULL,
    name       TEXT NOT NULL,
    is_default BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (service_id, name)
);
CREATE TABLE vonage_template_fragments (
    id          TEXT PRIMARY KEY,
    template_id TEXT NOT NULL REFERENCES vonage_templates(id) ON DELETE CASCADE,
    channel     TEXT NOT NULL,
    locale      TEXT NOT NULL,
    text        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (template_id, channel, locale)
);
