-- Schema version 18: what a delivery sent is stored once per distinct content, in
-- delivery_contents, and each delivery names it (content_id) instead of holding a copy: the
-- deliveries of a fan-out mostly send one content, which each of them no longer writes into
-- its row at every change. digest is the SHA-256 (hex) of body; a content stored before this
-- version is moved here as it was, under 'delivery:' and the id of its delivery.

CREATE TABLE delivery_contents (
    id      INTEGER PRIMARY KEY,
    digest  TEXT NOT NULL UNIQUE,
    body    TEXT NOT NULL                     -- JSON, the channel's content
);

ALTER TABLE deliveries ADD COLUMN content_id INTEGER REFERENCES delivery_contents (id);

INSERT INTO delivery_contents (digest, body)
    SELECT 'delivery:' || id, content FROM deliveries WHERE content IS NOT NULL ORDER BY id;
UPDATE deliveries SET content_id = (
    SELECT c.id FROM delivery_contents c WHERE c.digest = 'delivery:' || deliveries.id
) WHERE content IS NOT NULL;
ALTER TABLE deliveries DROP COLUMN content;
