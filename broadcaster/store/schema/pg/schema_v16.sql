-- PostgreSQL schema version 16: deliveries awaiting a confirmation are indexed by channel and by when
-- they last changed, so the sweeper's question "which have waited longer than the channel's
-- confirmation timeout" reads only those, not every accepted delivery each second (100,000
-- boxes playing a long warning are all accepted for minutes).

DROP INDEX deliveries_confirming;
CREATE INDEX deliveries_confirming ON deliveries (channel, updated_at) WHERE state = 'accepted';
