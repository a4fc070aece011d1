-- Schema version 4: reserved for officers, sessions and the audit log.
SELECT 1;
