-- Budget counters (what a phone number, key, service, country, prefix or IP used in a window),
-- shared by every instance. Exact counters use shard 0; busy shared ones spread over shards.
CREATE TABLE budget_counters (
    name         TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    shard        INTEGER NOT NULL,
    used         INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (name, window_start, shard)
);
CREATE INDEX budget_counters_expires ON budget_counters (expires_at);
