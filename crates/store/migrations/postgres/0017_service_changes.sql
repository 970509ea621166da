-- Services change and are deleted. A deleted service stays (its verifications and messages name
-- it) with its deletion time, and its name becomes the name, a line break and its id, which no
-- live service's name can be: the name is free again.
ALTER TABLE services ADD COLUMN deleted_at BIGINT;
-- The name a service is shown as where its unique name could not be that (a Twilio service given
-- a FriendlyName another service has); NULL: its name.
ALTER TABLE services ADD COLUMN friendly_name TEXT;
ALTER TABLE services ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
UPDATE services SET updated_at = created_at;
-- A verification's service texts when it started (JSON: name and templates), which its messages
-- are written from; NULL for verifications from before (their service's current texts).
ALTER TABLE verifications ADD COLUMN texts TEXT;
