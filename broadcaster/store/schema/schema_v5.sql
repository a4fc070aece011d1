-- Schema version 5: scheduled test broadcasts, their per-target reports, link checks and the
-- notices raised for officers. Times are UNIX seconds (REAL, UTC).

CREATE TABLE schedules (
    name          TEXT PRIMARY KEY,
    definition    TEXT NOT NULL,              -- JSON of the schedule (cron, kind, channels, ...)
    source        TEXT NOT NULL CHECK (source IN ('config', 'api')),
    config_hash   TEXT,                       -- the configuration entry it was last taken from
    last_fire_at  REAL,                       -- latest cron time handled: run, missed or skipped
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    updated_by    TEXT NOT NULL
);

CREATE TABLE schedule_runs (
    id             INTEGER PRIMARY KEY,
    schedule       TEXT NOT NULL,             -- a name: reports outlive deleted schedules
    kind           TEXT NOT NULL CHECK (kind IN ('silent', 'audible-test', 'exercise')),
    trigger        TEXT NOT NULL CHECK (trigger IN ('cron', 'catch-up', 'manual')),
    scheduled_for  REAL,                      -- the cron time it stands for (NULL: manual)
    started_at     REAL NOT NULL,
    finished_at    REAL,
    state          TEXT NOT NULL CHECK (state IN
                       ('running', 'passed', 'failed', 'missed', 'interrupted')),
    alert_id       TEXT REFERENCES alerts (id),
    reached        INTEGER NOT NULL DEFAULT 0,
    failed         INTEGER NOT NULL DEFAULT 0,
    detail         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX schedule_runs_schedule ON schedule_runs (schedule, id);
CREATE INDEX schedule_runs_state ON schedule_runs (state);

CREATE TABLE schedule_run_targets (
    run_id       INTEGER NOT NULL REFERENCES schedule_runs (id) ON DELETE CASCADE,
    channel      TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    target_name  TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('reached', 'failed')),
    detail       TEXT NOT NULL DEFAULT '',
    checked_at   REAL NOT NULL,
    PRIMARY KEY (run_id, channel, target_id)
);

CREATE TABLE link_status (
    channel      TEXT NOT NULL,
    target_id    TEXT NOT NULL,               -- '*' for the channel as a whole
    ok           INTEGER NOT NULL,
    detail       TEXT NOT NULL DEFAULT '',
    failures     INTEGER NOT NULL DEFAULT 0,  -- consecutive failed probes
    checked_at   REAL NOT NULL,
    last_ok_at   REAL,
    PRIMARY KEY (channel, target_id)
);

CREATE TABLE notices (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('link', 'test-run')),
    subject          TEXT NOT NULL,           -- channel/target for a link, schedule for a run
    message          TEXT NOT NULL,
    opened_at        REAL NOT NULL,
    resolved_at      REAL,
    acknowledged_at  REAL,
    acknowledged_by  TEXT,
    notified         TEXT NOT NULL DEFAULT '[]' -- JSON: one {officer, ok, detail} per officer
);
CREATE UNIQUE INDEX notices_open ON notices (kind, subject) WHERE resolved_at IS NULL;
