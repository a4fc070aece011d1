"""The audit log: every officer action, append-only and hash-chained, with a verifier.

Each entry records when, who (``actor``: ``console:<user>``, ``cli``, ``system``), what
(``action``: ``login``, ``login.failed``, ``alert.draft``, ``alert.approve``, ``alert.reject``,
``alert.cancel``, ``alert.update``, ``user.add``, ``token.create`` ...), on what (``subject``)
and a JSON ``detail``. Entry ``n`` stores ``hash_n = SHA-256(canonical(n, at, actor, action,
subject, detail) + hash_{n-1})`` with ``hash_0`` sixty-four zeros, so editing, deleting or
reordering any stored entry breaks the chain from that entry on; :meth:`AuditLog.verify` walks
the chain and names the first entry that does not match.

SQLite triggers refuse UPDATE and DELETE on the table; the chain catches what goes around them
(an edited file). Removing entries from the end leaves a valid shorter chain: publish the head
hash (``broadcaster audit verify`` prints it) somewhere else to detect that too.

Detail keys that look like secrets (``password``, ``token``, ``secret``) are refused: the log is
shown to officers and must never hold one.

Exceptions::

    AuditError (BroadcasterError)   an entry was refused (a secret in its detail)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broadcaster.errors import BroadcasterError
from broadcaster.store.db import Database

GENESIS_HASH = "0" * 64
_SECRET_WORDS = ("password", "token", "secret", "cookie", "session_id")


class AuditError(BroadcasterError):
    """An audit entry was refused."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: float
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "detail": self.detail,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The result of walking the chain: ``ok``, how many entries, the head, the first fault."""

    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None = None
    problem: str = ""


def entry_hash(
    prev_hash: str, seq: int, at: float, actor: str, action: str, subject: str, detail: str
) -> str:
    """The chained hash of one entry; ``detail`` is the JSON text exactly as stored."""
    canonical = json.dumps(
        [seq, f"{at:.6f}", actor, action, subject, detail],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256((canonical + prev_hash).encode("utf-8")).hexdigest()


def _check_detail(detail: Mapping[str, Any], path: str = "detail") -> None:
    for key, value in detail.items():
        if any(word in str(key).lower() for word in _SECRET_WORDS):
            raise AuditError(f"{path}.{key}: secrets are never written to the audit log")
        if isinstance(value, Mapping):
            _check_detail(value, f"{path}.{key}")


class AuditLog:
    """The ``audit_log`` table; every method runs on the database thread."""

    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self.database = database
        self.clock = clock

    def append(
        self, actor: str, action: str, subject: str = "", detail: Mapping[str, Any] | None = None
    ) -> AuditEntry:
        """Add one entry at the end of the chain, in its own transaction."""
        detail = dict(detail or {})
        _check_detail(detail)
        text = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
        at = round(self.clock(), 6)
        with self.database.transaction() as conn:
            self.database.serialize(conn, "audit_log.seq")
            row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            last = row.fetchone()
            seq = 1 if last is None else int(last["seq"]) + 1
            prev = GENESIS_HASH if last is None else str(last["hash"])
            digest = entry_hash(prev, seq, at, actor, action, subject, text)
            conn.execute(
                "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, at, actor, action, subject, text, prev, digest),
            )
        return AuditEntry(seq, at, actor, action, subject, detail, prev, digest)

    def entries(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        action: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
    ) -> list[AuditEntry]:
        """The newest entries first, optionally filtered (``action`` matches a prefix)."""
        sql = "SELECT * FROM audit_log WHERE 1 = 1"
        params: list[Any] = []
        if action:
            sql += " AND (action = ? OR action LIKE ?)"
            params += [action, f"{action}.%"]
        if actor:
            sql += " AND actor = ?"
            params.append(actor)
        if subject:
            sql += " AND subject = ?"
            params.append(subject)
        sql += " ORDER BY seq DESC LIMIT ? OFFSET ?"
        params += [limit, offset]
        return [_entry(row) for row in self.database.query(sql, params)]

    def verify(self) -> AuditReport:
        """Walk the whole chain from the first entry; stop at the first that does not match."""
        prev = GENESIS_HASH
        expected_seq = 1
        count = 0
        cursor = self.database.conn.execute("SELECT * FROM audit_log ORDER BY seq")
        for row in cursor:
            seq = int(row["seq"])
            if seq != expected_seq:
                return AuditReport(False, count, prev, seq, f"entry {expected_seq} is missing")
            if row["prev_hash"] != prev:
                return AuditReport(
                    False, count, prev, seq, f"entry {seq} does not link to the entry before it"
                )
            digest = entry_hash(
                prev,
                seq,
                float(row["at"]),
                row["actor"],
                row["action"],
                row["subject"],
                row["detail"],
            )
            if digest != row["hash"]:
                return AuditReport(
                    False, count, prev, seq, f"entry {seq} was changed after it was written"
                )
            prev = digest
            expected_seq += 1
            count += 1
        return AuditReport(True, count, prev)


def _entry(row: Mapping[str, Any]) -> AuditEntry:
    try:
        detail = json.loads(row["detail"])
    except json.JSONDecodeError:
        detail = {"unreadable": row["detail"]}
    return AuditEntry(
        seq=int(row["seq"]),
        at=float(row["at"]),
        actor=str(row["actor"]),
        action=str(row["action"]),
        subject=str(row["subject"]),
        detail=detail if isinstance(detail, dict) else {"value": detail},
        prev_hash=str(row["prev_hash"]),
        hash=str(row["hash"]),
    )
