-- Schema version 1: alerts, their references, the target registry, the delivery outbox and the
-- append-only event logs. Times are UNIX seconds (REAL, UTC).

CREATE TABLE alerts (
    id            TEXT PRIMARY KEY,           -- stable: derived from sender, identifier, sent
    sender        TEXT NOT NULL,
    identifier    TEXT NOT NULL,
    sent          TEXT NOT NULL,              -- CAP time, normalised
    status        TEXT NOT NULL,
    msg_type      TEXT NOT NULL,
    scope         TEXT NOT NULL,
    event         TEXT,
    headline      TEXT,
    severity      TEXT,
    urgency       TEXT,
    effective_at  REAL NOT NULL,
    expires_at    REAL NOT NULL,
    state         TEXT NOT NULL CHECK (state IN
                      ('active', 'held', 'cancelled', 'superseded', 'expired')),
    priority      INTEGER NOT NULL,
    channels      TEXT NOT NULL,              -- JSON list of channel instance names
    origin        TEXT NOT NULL,              -- api, console, scheduler, feed, cli
    cap_version   TEXT NOT NULL,
    raw_xml       BLOB NOT NULL,              -- the document as received, verbatim
    document      TEXT NOT NULL,              -- the CAP JSON form, for fast loading
    received_at   REAL NOT NULL,
    UNIQUE (sender, identifier, sent)
);
CREATE INDEX alerts_state ON alerts (state, expires_at);

CREATE TABLE alert_references (
    alert_id       TEXT NOT NULL REFERENCES alerts (id),
    ref_sender     TEXT NOT NULL,
    ref_identifier TEXT NOT NULL,
    ref_sent       TEXT NOT NULL,             -- verbatim from <references>
    ref_alert_id   TEXT REFERENCES alerts (id),
    PRIMARY KEY (alert_id, ref_sender, ref_identifier, ref_sent)
);
CREATE INDEX alert_references_target ON alert_references (ref_alert_id);

CREATE TABLE alert_events (
    id        INTEGER PRIMARY KEY,
    alert_id  TEXT NOT NULL REFERENCES alerts (id),
    at        REAL NOT NULL,
    event     TEXT NOT NULL,
    detail    TEXT
);
CREATE INDEX alert_events_alert ON alert_events (alert_id);

CREATE TABLE targets (
    id        TEXT PRIMARY KEY,
    channel   TEXT NOT NULL,
    name      TEXT NOT NULL,
    division  TEXT,                           -- 12-digit administrative division code
    lat       REAL,
    lon       REAL,
    address   TEXT NOT NULL DEFAULT '',
    languages TEXT NOT NULL DEFAULT '["zh-CN"]',
    params    TEXT NOT NULL DEFAULT '{}',
    enabled   INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX targets_channel_division ON targets (channel, division);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    alert_id        TEXT NOT NULL REFERENCES alerts (id),
    channel         TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    part            INTEGER NOT NULL DEFAULT 0,
    target          TEXT NOT NULL,            -- JSON snapshot of the target when planned
    state           TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'accepted',
                        'confirmed', 'failed', 'expired', 'cancelled')),
    priority        INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    expires_at      REAL NOT NULL,
    last_error      TEXT,
    provider_ref    TEXT,
    idempotency_key TEXT NOT NULL,
    updated_at      REAL NOT NULL,
    UNIQUE (alert_id, channel, target_id, part)
);
CREATE INDEX deliveries_due ON deliveries (channel, state, priority, next_attempt_at);
CREATE INDEX deliveries_alert ON deliveries (alert_id, channel, state);

CREATE TABLE delivery_events (
    id          INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
    at          REAL NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    detail      TEXT
);
CREATE INDEX delivery_events_delivery ON delivery_events (delivery_id);
