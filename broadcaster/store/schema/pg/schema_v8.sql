-- PostgreSQL schema version 8: a delivery can succeed with a warning the officer must see, such as a
-- language of a bilingual warning that no voice, clip or recording could speak.

ALTER TABLE deliveries ADD COLUMN warning TEXT;
CREATE INDEX deliveries_warning ON deliveries (channel) WHERE warning IS NOT NULL;
