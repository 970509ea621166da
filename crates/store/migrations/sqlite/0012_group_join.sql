-- Joining by SMS reply: the group's invite code (derived from the server secret and its
-- generation; rotating it adds a generation), and the flows a reply started.
CREATE TABLE invite_codes (
    generation INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
ALTER TABLE auth_flows ADD COLUMN origin TEXT;
CREATE INDEX auth_flows_phone ON auth_flows (phone);
-- Who caused an audit event: a signed-in user's id or an API key's id.
ALTER TABLE audit_events ADD COLUMN actor TEXT;
-- Checks by number find the verification a number's wrong codes locked.
CREATE INDEX verifications_locked ON verifications (service_id, to_number) WHERE status = 'max_attempts_reached';
-- Android SMS Retriever: the app's 11-character hash, appended to the message's last line.
ALTER TABLE verifications ADD COLUMN app_hash TEXT;
-- Services that let the app choose the code (Twilio CustomCode, Vonage pin_code): 1, else 0.
ALTER TABLE services ADD COLUMN custom_codes INTEGER NOT NULL DEFAULT 0;
-- PSD2 (dynamic linking): services that may send payment codes, and a verification's amount and payee.
ALTER TABLE services ADD COLUMN psd2 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE verifications ADD COLUMN psd2_amount TEXT;
ALTER TABLE verifications ADD COLUMN psd2_payee TEXT;
-- Each counted check of a verification (when, right or wrong, from where; never the code typed),
-- which Vonage's search lists.
CREATE TABLE verification_checks (
    verification_id TEXT NOT NULL,
    at              INTEGER NOT NULL,
    valid           INTEGER NOT NULL,
    ip              TEXT
);
CREATE INDEX verification_checks_verification ON verification_checks (verification_id);
