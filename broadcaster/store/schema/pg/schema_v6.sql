-- PostgreSQL schema version 6: the sweeper's questions ("what is past its expiry?", "what is still
-- queued for a cancelled alert?", "what waits for a confirmation?") ask by state across every
-- channel; without this index each sweep read the whole outbox.

CREATE INDEX deliveries_state_expiry ON deliveries (state, expires_at);
