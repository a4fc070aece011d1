-- Schema version 12: the alerts a node this one reports to (a [[node.report_to]] client) sent
-- here, whichever way each came first. The region's feed may bring an alert before the city
-- relays it: the relay is then a duplicate, and the alert's origin names the feed, not the city.

CREATE TABLE relayed_alerts (
    alert_id    TEXT NOT NULL REFERENCES alerts (id),
    client      TEXT NOT NULL,                -- the [[api.tokens]] name of the relaying node
    relayed_at  REAL NOT NULL,
    PRIMARY KEY (alert_id, client)
);
CREATE INDEX relayed_alerts_at ON relayed_alerts (relayed_at);
