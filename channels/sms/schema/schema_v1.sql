-- Schema version 1 of an SMS channel's record of submissions (channels.sms.submissions).
-- Times are UNIX seconds (REAL, UTC).

CREATE TABLE submissions (
    key               TEXT PRIMARY KEY,       -- the delivery's idempotency key
    delivery_id       INTEGER NOT NULL UNIQUE,
    attempt           INTEGER NOT NULL,       -- the attempt whose pool reference the segments carry
    number            TEXT NOT NULL,
    text_digest       TEXT NOT NULL,          -- SHA-256 of the SMS text, hex
    total             INTEGER NOT NULL CHECK (total >= 1),
    concat_reference  INTEGER CHECK (concat_reference BETWEEN 0 AND 255),
    created_at        REAL NOT NULL,
    valid_until       REAL NOT NULL,          -- end of TP-VP: the network gives up after it
    expires_at        REAL NOT NULL,          -- the alert's expiry: no send after it, pruned later
    outcome           TEXT CHECK (outcome IN ('confirmed', 'failed')),
    detail            TEXT,
    settled_at        REAL                    -- when the outcome was written
);
CREATE INDEX submissions_open ON submissions (outcome, valid_until);
CREATE INDEX submissions_expiry ON submissions (expires_at);
CREATE INDEX submissions_settled ON submissions (settled_at);

CREATE TABLE segments (
    key                TEXT NOT NULL REFERENCES submissions (key) ON DELETE CASCADE,
    sequence           INTEGER NOT NULL CHECK (sequence >= 1),
    modem              TEXT NOT NULL,
    message_reference  INTEGER NOT NULL CHECK (message_reference BETWEEN 0 AND 255),
    state              TEXT NOT NULL CHECK (state IN ('submitted', 'pending', 'delivered', 'failed')),
    status             INTEGER,               -- the last TP-ST reported
    submitted_at       REAL NOT NULL,
    PRIMARY KEY (key, sequence)
);
