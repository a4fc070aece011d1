"""Writing what a batch of transitions changes in the ``deliveries`` rows, with few statements.

A batch's changes mostly come in shapes shared by many deliveries: a fan-out's send results
give every delivery the same state and content (and, per command, the same reference), its
confirmations the same final state. Deliveries whose state, error, content and warning are
equal are written with one ``UPDATE`` of those constant values: with a list of their ids when
their reference and next attempt are equal too, else with each row's own reference and next
attempt read from a JSON array of small objects. The content, the bulk of a row, is neither
repeated in the parameters nor decoded once per row. The statements are the same on
SQLite and PostgreSQL (:meth:`~broadcaster.store.db.Database.json_rows`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from broadcaster.store.db import Connection, Database

OWN = (("id", "bigint"), ("provider_ref", "text"), ("next_attempt_at", "double precision"))
"""Values each change of a statement has of its own (absent or None: kept)."""


def write_changes(
    database: Database, conn: Connection, changes: Iterable[dict[str, Any]], now: float
) -> None:
    """Write each change (``id``, the new ``state`` and the values given; None or absent:
    kept) and ``updated_at = now``."""
    shapes: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for change in changes:
        get = change.get
        shape = (change["state"], get("last_error"), get("content"), get("warning"))
        mine = {"id": change["id"]}
        for name in ("provider_ref", "next_attempt_at"):
            if get(name) is not None:
                mine[name] = change[name]
        shapes.setdefault(shape, []).append(mine)
    for (state, last_error, content, warning), rows in shapes.items():
        shared = (state, now, last_error, content, warning)
        own = {(row.get("provider_ref"), row.get("next_attempt_at")) for row in rows}
        if len(own) == 1:  # one value for every row: constants and a list of ids
            provider_ref, next_attempt_at = own.pop()
            conn.execute(
                _UPDATE.format(
                    provider_ref="coalesce(?, deliveries.provider_ref)",
                    next_attempt_at="coalesce(?, deliveries.next_attempt_at)",
                    rows="WHERE id IN (" + database.int_list() + ")",
                ),
                (*shared, provider_ref, next_attempt_at, json.dumps([r["id"] for r in rows])),
            )
            continue
        conn.execute(
            _UPDATE.format(
                provider_ref="coalesce(c.provider_ref, deliveries.provider_ref)",
                next_attempt_at="coalesce(c.next_attempt_at, deliveries.next_attempt_at)",
                rows="FROM (" + database.json_rows(OWN) + ") AS c WHERE deliveries.id = c.id",
            ),
            (*shared, json.dumps(rows, ensure_ascii=False)),
        )


_UPDATE = (
    "UPDATE deliveries SET state = ?, updated_at = ?,"
    " last_error = coalesce(?, deliveries.last_error),"
    " content = coalesce(?, deliveries.content),"
    " warning = coalesce(?, deliveries.warning),"
    " provider_ref = {provider_ref}, next_attempt_at = {next_attempt_at} {rows}"
)
"""One statement of :func:`write_changes`: what differs is where each row's own values and
the rows come from."""
