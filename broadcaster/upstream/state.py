"""What the upstream sources left in the store: conditional-GET validators and seen entries.

A polled feed's ``ETag`` and ``Last-Modified`` are kept per source, so the first poll after a
restart is conditional too; every feed entry (its id and ``updated``) is recorded once it is
taken or refused for good, with the alert it became, so no entry is fetched twice; and every
alert pushed to a neighbour's API, so each goes once. Plain, portable SQL (schema v9): each
write is one upsert, so nodes sharing a store that write the same row at once both succeed.
"""

from __future__ import annotations

from dataclasses import dataclass

from broadcaster.store.db import Database


@dataclass(frozen=True, slots=True)
class Validators:
    """What a feed answered last, for ``If-None-Match`` and ``If-Modified-Since``."""

    etag: str | None = None
    last_modified: str | None = None


class UpstreamTable:
    """The ``upstream_sources`` and ``upstream_entries`` tables (call on the database thread)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def validators(self, source: str) -> Validators:
        rows = self.database.query(
            "SELECT etag, last_modified FROM upstream_sources WHERE name = ?", (source,)
        )
        return Validators(rows[0]["etag"], rows[0]["last_modified"]) if rows else Validators()

    def save_validators(self, source: str, validators: Validators) -> None:
        self.database.conn.execute(
            "INSERT INTO upstream_sources (name, etag, last_modified) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET etag = excluded.etag,"
            " last_modified = excluded.last_modified",
            (source, validators.etag, validators.last_modified),
        )

    def seen(self, source: str, entry: str, updated: str) -> bool:
        rows = self.database.query(
            "SELECT 1 FROM upstream_entries WHERE source = ? AND entry = ? AND updated = ?",
            (source, entry, updated),
        )
        return bool(rows)

    def record(
        self,
        source: str,
        entry: str,
        updated: str,
        *,
        url: str,
        outcome: str,
        alert_id: str | None,
        now: float,
    ) -> None:
        self.database.conn.execute(
            "INSERT INTO upstream_entries (source, entry, updated, url, outcome, alert_id, seen_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, entry, updated) DO UPDATE"
            " SET url = excluded.url, outcome = excluded.outcome, alert_id = excluded.alert_id,"
            " seen_at = excluded.seen_at",
            (source, entry, updated, url, outcome, alert_id, now),
        )

    def pushed(self, neighbour: str, alert_id: str) -> bool:
        rows = self.database.query(
            "SELECT 1 FROM neighbour_pushes WHERE neighbour = ? AND alert_id = ?",
            (neighbour, alert_id),
        )
        return bool(rows)

    def record_push(self, neighbour: str, alert_id: str, outcome: str, now: float) -> None:
        """Keep the outcome of pushing ``alert_id``; the first recorded stays (another node
        that pushed it at the same time finds it recorded)."""
        self.database.conn.execute(
            "INSERT INTO neighbour_pushes (neighbour, alert_id, outcome, pushed_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (neighbour, alert_id) DO NOTHING",
            (neighbour, alert_id, outcome, now),
        )

    def entries(self, source: str) -> list[dict[str, object]]:
        """The source's recorded entries, newest first."""
        return self.database.query(
            "SELECT entry, updated, url, outcome, alert_id, seen_at FROM upstream_entries"
            " WHERE source = ? ORDER BY seen_at DESC",
            (source,),
        )
