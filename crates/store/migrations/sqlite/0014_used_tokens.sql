-- Tokens that may be used once (a signed-redirect step's incoming token), by SHA-256, kept
-- until they expire.
CREATE TABLE used_tokens (
    digest     BLOB PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX used_tokens_expiry ON used_tokens (expires_at);
