-- Invites of an invite-only group: an admin invites a number (optionally for an existing
-- username); a sign-up of that number consumes the invite once.
CREATE TABLE invites (
    id           TEXT PRIMARY KEY,
    phone        TEXT NOT NULL,
    username     TEXT,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_sent_at INTEGER NOT NULL,
    used_at      INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX invites_phone ON invites (phone);
ALTER TABLE auth_flows ADD COLUMN invite_id TEXT;
