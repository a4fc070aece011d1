-- Schema version 4: warning officers, their console sessions, API tokens issued by admins, and
-- the append-only, hash-chained audit log. Times are UNIX seconds (REAL, UTC).

CREATE TABLE officers (
    username            TEXT PRIMARY KEY,
    display_name        TEXT NOT NULL DEFAULT '',
    role                TEXT NOT NULL CHECK (role IN ('viewer', 'drafter', 'approver', 'admin')),
    password_hash       TEXT NOT NULL,            -- argon2id; the password itself is never stored
    enabled             INTEGER NOT NULL DEFAULT 1,
    failed_logins       INTEGER NOT NULL DEFAULT 0,
    locked_until        REAL NOT NULL DEFAULT 0,
    created_at          REAL NOT NULL,
    password_changed_at REAL NOT NULL,
    last_login_at       REAL
);

CREATE TABLE console_sessions (
    id_hash      TEXT PRIMARY KEY,                -- SHA-256 of the cookie value, never the value
    username     TEXT NOT NULL REFERENCES officers (username),
    csrf_token   TEXT NOT NULL,
    created_at   REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    expires_at   REAL NOT NULL,
    address      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX console_sessions_user ON console_sessions (username);

CREATE TABLE api_token_grants (
    id                INTEGER PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    token_hash        TEXT NOT NULL UNIQUE,       -- SHA-256 of the token, never the token
    hint              TEXT NOT NULL,              -- its first characters, to recognise it
    requires_approval INTEGER NOT NULL DEFAULT 1,
    created_by        TEXT NOT NULL,
    created_at        REAL NOT NULL,
    revoked_by        TEXT,
    revoked_at        REAL,
    last_used_at      REAL
);

CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at        REAL NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL DEFAULT '',
    detail    TEXT NOT NULL DEFAULT '{}',
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_log_action ON audit_log (action, at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
