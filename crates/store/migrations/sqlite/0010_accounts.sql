-- Accounts: users, login flows, sessions (browser cookies and app refresh-token families),
-- refresh tokens and the keys access tokens are signed with.
CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL,
    username_lc    TEXT NOT NULL UNIQUE,
    email          TEXT,
    email_lc       TEXT UNIQUE,
    phone          TEXT NOT NULL UNIQUE,
    password_hash  TEXT,
    roles          TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    last_login_at  INTEGER
);

CREATE TABLE auth_flows (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    user_id         TEXT,
    phone           TEXT,
    username        TEXT,
    email           TEXT,
    password_hash   TEXT,
    verification_id TEXT,
    login           TEXT,
    attempts        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    last_sent_at    INTEGER NOT NULL,
    used_at         INTEGER
);
CREATE INDEX auth_flows_expires ON auth_flows (expires_at);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    secret_hash  BLOB UNIQUE,
    device       TEXT,
    ip           TEXT,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    spent_at   INTEGER
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE jwt_keys (
    kid            TEXT PRIMARY KEY,
    alg            TEXT NOT NULL,
    private_sealed BLOB NOT NULL,
    public_jwk     TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);

-- Events for the app's webhook (user created, phone changed, deleted), written in the same
-- transaction as the change and delivered by the queue worker until the app accepts them.
CREATE TABLE account_events (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    due_at       INTEGER NOT NULL,
    lease_token  TEXT,
    done_at      INTEGER
);
CREATE INDEX account_events_due ON account_events (due_at) WHERE done_at IS NULL;
