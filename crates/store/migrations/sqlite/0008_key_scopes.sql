-- API keys get a scope: 'admin' (everything; every existing key) or 'service', limited to the
-- services listed (ids separated by spaces).
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE api_keys ADD COLUMN service_ids TEXT NOT NULL DEFAULT '';
