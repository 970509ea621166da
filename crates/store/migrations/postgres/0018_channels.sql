-- Channels and workflows: a service's default workflow and channel settings, a verification's
-- steps (kept as they were at its start), and each message's channel and step.
ALTER TABLE services ADD COLUMN workflow TEXT;
ALTER TABLE services ADD COLUMN email_from TEXT;
ALTER TABLE services ADD COLUMN email_reply_to TEXT;
ALTER TABLE services ADD COLUMN voice_key_press INTEGER NOT NULL DEFAULT 0;
ALTER TABLE verifications ADD COLUMN workflow TEXT;
ALTER TABLE verifications ADD COLUMN step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE verifications ADD COLUMN step_due_at BIGINT;
CREATE INDEX verifications_step_due ON verifications (step_due_at) WHERE status = 'pending' AND step_due_at IS NOT NULL;
ALTER TABLE messages ADD COLUMN channel TEXT NOT NULL DEFAULT 'sms';
ALTER TABLE messages ADD COLUMN step INTEGER;
ALTER TABLE verifications ADD COLUMN manual_steps BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE verifications ADD COLUMN key_id TEXT;
