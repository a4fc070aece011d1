-- PostgreSQL schema version 9: upstream sources and neighbours. What each polled source's feed last
-- answered (for conditional GET across restarts) and every feed entry taken or refused, so an
-- entry is fetched once, also after a restart; which alert it became, if any.

CREATE TABLE upstream_sources (
    name TEXT PRIMARY KEY,
    etag TEXT,
    last_modified TEXT
);

CREATE TABLE upstream_entries (
    source TEXT NOT NULL,
    entry TEXT NOT NULL,
    updated TEXT NOT NULL,
    url TEXT NOT NULL,
    outcome TEXT NOT NULL,
    alert_id TEXT,
    seen_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (source, entry, updated)
);

-- Alerts pushed to each neighbour's API, so each goes once (a refusal is final too).
CREATE TABLE neighbour_pushes (
    neighbour TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    pushed_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (neighbour, alert_id)
);
