-- PostgreSQL schema version 13: the sweeper's expiry and lease indexes hold only the
-- deliveries they are asked about (queued or accepted; sending), so a delivery reaching a
-- final state leaves them instead of being rewritten in each, and a claim, which asks for
-- queued deliveries of one channel, takes them in order from deliveries_due instead of
-- sorting every queued one.

DROP INDEX deliveries_state_expiry;
CREATE INDEX deliveries_expiry ON deliveries (expires_at) WHERE state IN ('queued', 'accepted');
DROP INDEX deliveries_lease;
CREATE INDEX deliveries_lease ON deliveries (lease_until) WHERE state = 'sending';
