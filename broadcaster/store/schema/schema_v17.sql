-- Schema version 17: a delivery queued again for the node that holds its device. for_node
-- names that node and for_until (seconds since the epoch) is when other nodes may claim it
-- again (its holder may have died meanwhile); NULL: any node may claim it.

ALTER TABLE deliveries ADD COLUMN for_node TEXT;
ALTER TABLE deliveries ADD COLUMN for_until REAL;
