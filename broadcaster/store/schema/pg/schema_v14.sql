-- PostgreSQL schema version 14: each index of deliveries holds only the states its questions ask
-- about, so a state change rewrites few index entries (a delivery reaching a final state
-- leaves them all but deliveries_alert):
-- claims and retries brought forward read queued deliveries of one channel in order
-- (deliveries_due); the sweeper asks what is past its expiry among queued and accepted ones,
-- whose lease ran out among those sending, and what waits too long for a confirmation.

DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (channel, priority, next_attempt_at, id)
    WHERE state = 'queued';
DROP INDEX deliveries_state_expiry;
CREATE INDEX deliveries_expiry ON deliveries (expires_at) WHERE state IN ('queued', 'accepted');
DROP INDEX deliveries_lease;
CREATE INDEX deliveries_lease ON deliveries (lease_until) WHERE state = 'sending';
CREATE INDEX deliveries_confirming ON deliveries (channel) WHERE state = 'accepted';
