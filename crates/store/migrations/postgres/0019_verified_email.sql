-- Accounts' e-mail addresses: whether the account proved it holds its address (a code sent to
-- it, POST /api/me/email) or only gave it at sign-up; and an account's pending address change,
-- found by its user.
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;
CREATE INDEX auth_flows_user ON auth_flows (user_id, kind) WHERE used_at IS NULL;
