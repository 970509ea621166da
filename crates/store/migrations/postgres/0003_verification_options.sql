-- Per-verification attempt limit (a compat API may ask for fewer) and brand shown in the message.
ALTER TABLE verifications ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 5;
ALTER TABLE verifications ADD COLUMN brand TEXT;
