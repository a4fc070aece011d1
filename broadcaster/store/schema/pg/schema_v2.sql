-- PostgreSQL schema version 2: targets know where they come from. The registry file owns the rows with
-- source 'registry' (replaced at every start); a channel owns the rows it registers itself
-- (web push subscriptions, boxes that enrol), which a restart keeps.

ALTER TABLE targets ADD COLUMN source TEXT NOT NULL DEFAULT 'registry';
CREATE INDEX targets_source ON targets (source);
