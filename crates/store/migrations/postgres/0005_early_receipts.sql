-- Delivery receipts that arrive before the send's result (and so its provider message id) is
-- stored; applied when it is, deleted by retention otherwise.
CREATE TABLE early_receipts (
    provider_message_id TEXT PRIMARY KEY,
    status              TEXT NOT NULL,
    error               TEXT,
    received_at         BIGINT NOT NULL
);
