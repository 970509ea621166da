-- OpenID Connect: a grant to a client is a session with the client's id and scopes (its refresh
-- tokens are the session's family); every session records how and when its person signed in.
ALTER TABLE sessions ADD COLUMN auth_time INTEGER;
ALTER TABLE sessions ADD COLUMN amr TEXT;
ALTER TABLE sessions ADD COLUMN client_id TEXT;
ALTER TABLE sessions ADD COLUMN scope TEXT;
CREATE INDEX sessions_client ON sessions (client_id, user_id) WHERE client_id IS NOT NULL;

-- Clients made through the admin API (configured ones live in the configuration). The secret
-- only as its SHA-256; the rest as JSON.
CREATE TABLE oidc_clients (
    client_id   TEXT PRIMARY KEY,
    secret_hash BLOB,
    settings    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Authorization codes, found by their SHA-256; kept a while after use so a second exchange is
-- recognised (and ends the grant the first one opened).
CREATE TABLE oidc_codes (
    code_hash  BLOB PRIMARY KEY,
    client_id  TEXT NOT NULL,
    grant_data TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    session_id TEXT
);
CREATE INDEX oidc_codes_expires ON oidc_codes (expires_at);

-- What a user allowed a client to learn.
CREATE TABLE oidc_consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
