-- Channel options: a service's spoken name and WhatsApp sender; a verification's e-mail sender
-- and the keys its calls dial once answered.
ALTER TABLE services ADD COLUMN voice_name TEXT;
ALTER TABLE services ADD COLUMN whatsapp_from TEXT;
ALTER TABLE verifications ADD COLUMN email_from TEXT;
ALTER TABLE verifications ADD COLUMN send_digits TEXT;
