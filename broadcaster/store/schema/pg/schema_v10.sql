-- PostgreSQL schema version 10: city and county nodes as one system.
-- node_reports (at the city): the latest delivery summary a county node reported for an alert
-- relayed to it, kept under that relay delivery.
-- upward_reports (at the county): the latest summary the node an alert came from acknowledged,
-- so a restart reports only what changed and stops once a final summary was taken.

CREATE TABLE node_reports (
    delivery_id BIGINT PRIMARY KEY REFERENCES deliveries (id),
    node        TEXT NOT NULL,
    summary     TEXT NOT NULL,
    complete    INTEGER NOT NULL,
    reported_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE upward_reports (
    alert_id    TEXT PRIMARY KEY REFERENCES alerts (id),
    summary     TEXT NOT NULL,
    complete    INTEGER NOT NULL,
    acked_at    DOUBLE PRECISION NOT NULL
);
