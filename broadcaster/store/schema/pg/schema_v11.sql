-- PostgreSQL schema version 11: several nodes on one database. A node claims a delivery for a lease
-- (claimed_by, lease_until) that it renews while it works; a sweep on any node returns the
-- deliveries of a lease that ran out to 'queued'. device_leases names the one node that may
-- hold a device link (an encoder, a modem); channel_records is each channel's own small
-- key/value store of JSON records; schedule_fires lets one node only run a schedule's cron time.

ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE deliveries ADD COLUMN lease_until DOUBLE PRECISION;
CREATE INDEX deliveries_lease ON deliveries (state, lease_until);

CREATE TABLE device_leases (
    resource  TEXT PRIMARY KEY,               -- e.g. 'fm:encoder:150900', 'scheduler'
    node      TEXT NOT NULL,
    until     DOUBLE PRECISION NOT NULL
);

CREATE TABLE channel_records (
    channel     TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,                -- JSON
    updated_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (channel, key)
);

CREATE TABLE schedule_fires (                 -- one row per cron time handled, cluster-wide
    schedule       TEXT NOT NULL,
    scheduled_for  DOUBLE PRECISION NOT NULL,
    node           TEXT NOT NULL,
    PRIMARY KEY (schedule, scheduled_for)
);
