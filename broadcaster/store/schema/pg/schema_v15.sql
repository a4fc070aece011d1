-- PostgreSQL schema version 15: the steps of one delivery that one batch records at one time are one row
-- of delivery_events. steps holds them in order as a JSON array of [to_state, detail] (the
-- first from from_state, each next from the one before; to_state is the last one's) and detail
-- their details joined; NULL: the row is one step.

ALTER TABLE delivery_events ADD COLUMN steps TEXT;
