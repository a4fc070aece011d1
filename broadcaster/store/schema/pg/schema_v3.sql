-- PostgreSQL schema version 3: the two-person rule. An alert that needs approval is stored held, with a
-- pending approval; approving it plans its deliveries and makes it active in one transaction.

CREATE TABLE approvals (
    alert_id     TEXT PRIMARY KEY REFERENCES alerts (id),
    state        TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    requested_by TEXT NOT NULL,
    requested_at DOUBLE PRECISION NOT NULL,
    decided_by   TEXT,
    decided_at   DOUBLE PRECISION,
    reason       TEXT
);
CREATE INDEX approvals_state ON approvals (state);
