-- Schema version 13: the node that executes a scheduled run, under a lease it renews while the
-- run goes on. A node that starts, or finds a run whose lease ran out, resumes only such a run,
-- never one a live node is executing. Runs from before this version have no owner: their lease
-- counts as run out.

ALTER TABLE schedule_runs ADD COLUMN node TEXT;
ALTER TABLE schedule_runs ADD COLUMN lease_until REAL;
