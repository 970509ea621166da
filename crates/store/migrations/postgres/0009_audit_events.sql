-- The audit log of security events, read by admin keys (GET /api/audit).
CREATE TABLE audit_events (
    id         TEXT PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    key_id     TEXT,
    ip         TEXT,
    request_id TEXT NOT NULL,
    subject    TEXT,
    detail     TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_kind ON audit_events (kind, at);
