-- A Twilio SNA check names the number only: its newest silent verification.
CREATE INDEX verifications_silent ON verifications (service_id, to_number, created_at) WHERE channel = 'silent';
