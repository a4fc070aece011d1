-- PostgreSQL schema version 7: what was sent for each delivery (the channel's content: SMS text, segments
-- and encoding; PS, RT and PTY; audio id, duration and priority; push title and body), as JSON,
-- in the same shape as the channel's preview.
ALTER TABLE deliveries ADD COLUMN content TEXT;
