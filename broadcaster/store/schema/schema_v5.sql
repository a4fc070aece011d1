-- Schema version 5: reserved for schedules and test-run reports.
SELECT 1;
