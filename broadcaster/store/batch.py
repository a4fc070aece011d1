"""Writing a batch of transitions with few statements: what it changes in the ``deliveries``
rows, and the history rows of its steps.

Changed rows: a batch's changes mostly come in shapes shared by many deliveries: a fan-out's
send results give every delivery the same state and content (and, per command, the same
reference), its confirmations the same final state. Deliveries whose state, error, content and
warning are equal are written with one ``UPDATE`` of those constant values: with a list of
their ids when their reference and next attempt are equal too, else with each row's own
reference and next attempt read from a JSON array of small objects. The statements are the
same on SQLite and PostgreSQL (:meth:`~broadcaster.store.db.Database.json_rows`).

Many rows: :func:`insert_rows` writes a batch's new rows (a plan's deliveries, the history
rows below) with statements of many rows each on SQLite, the values all rows share bound
once, and as one bulk copy on PostgreSQL.

Contents: what a channel sent is stored once in ``delivery_contents`` (schema v18), keyed by
the SHA-256 of its JSON, and a delivery names it by ``content_id``: a fan-out's deliveries
mostly send one content, which is then encoded and written once per batch
(:class:`BatchContents`), not copied into every row.

History: a batch often carries several steps of one delivery at once (a loudspeaker box
accepts, starts and finishes its playback while the send's result is on its way); all of them
are recorded at the batch's time. :class:`BatchHistory` writes them as one ``delivery_events``
row per delivery (schema v15): ``from_state`` and ``to_state`` of the first and last step,
``detail`` the steps' details joined (for readers of the table itself), and ``steps`` the JSON
array of each step's ``[to_state, detail]`` in order (NULL for a row of one step).
:func:`expand` gives back every step as its own event, exactly as if each had had a row, so the
API and the console show the same history either way.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

from broadcaster.store.db import Connection, Database

OWN = (("id", "bigint"), ("provider_ref", "text"), ("next_attempt_at", "double precision"))
"""Values each change of a statement has of its own (absent or None: kept)."""


def write_changes(
    database: Database, conn: Connection, changes: Mapping[int, Sequence[Any]], now: float
) -> None:
    """Write each delivery's change and ``updated_at = now``. A change lists the new state,
    ``last_error``, ``content_id``, ``warning``, ``provider_ref`` and ``next_attempt_at``, in
    this order (None: kept): those its ``UPDATE`` sets alike for many deliveries, then those
    of :data:`OWN` after the id."""
    shapes: dict[tuple[Any, ...], list[tuple[int, Any, Any]]] = {}
    for delivery_id, (state, last_error, content_id, warning, ref, next_at) in changes.items():
        shape = (state, last_error, content_id, warning)
        group = shapes.get(shape)
        if group is None:
            shapes[shape] = [(delivery_id, ref, next_at)]
        else:
            group.append((delivery_id, ref, next_at))
    for (state, last_error, content_id, warning), rows in shapes.items():
        shared = (state, now, last_error, content_id, warning)
        own = {(ref, next_at) for _, ref, next_at in rows}
        if len(own) == 1:  # one value for every row: constants and a list of ids
            provider_ref, next_attempt_at = own.pop()
            conn.execute(
                _UPDATE.format(
                    provider_ref="coalesce(?, deliveries.provider_ref)",
                    next_attempt_at="coalesce(?, deliveries.next_attempt_at)",
                    rows="WHERE id IN (" + database.int_list() + ")",
                ),
                (*shared, provider_ref, next_attempt_at, json.dumps([r[0] for r in rows])),
            )
            continue
        mine = [dict(zip(_OWN_NAMES, row, strict=True)) for row in rows]
        conn.execute(
            _UPDATE.format(
                provider_ref="coalesce(c.provider_ref, deliveries.provider_ref)",
                next_attempt_at="coalesce(c.next_attempt_at, deliveries.next_attempt_at)",
                rows="FROM (" + database.json_rows(OWN) + ") AS c WHERE deliveries.id = c.id",
            ),
            (*shared, json.dumps(mine, ensure_ascii=False)),
        )


_OWN_NAMES = tuple(name for name, _ in OWN)
"""The names of :data:`OWN`, for the objects of a JSON array of them."""


_UPDATE = (
    "UPDATE deliveries SET state = ?, updated_at = ?,"
    " last_error = coalesce(?, deliveries.last_error),"
    " content_id = coalesce(?, deliveries.content_id),"
    " warning = coalesce(?, deliveries.warning),"
    " provider_ref = {provider_ref}, next_attempt_at = {next_attempt_at} {rows}"
)
"""One statement of :func:`write_changes`: what differs is where each row's own values and
the rows come from."""


INSERT_CHUNKS = (256, 64, 16)
"""Rows per statement of :func:`insert_rows`, largest first (a batch of 500 rows
takes 7 statements and an ``executemany`` of the last 4; ``256 * width`` parameters stay far
below SQLite's limit of 32,766)."""


def insert_rows(
    database: Database,
    conn: Connection,
    table: str,
    shared: Mapping[str, Any],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Insert ``rows`` (each the values of ``columns``) into ``table``, every one with the
    values of ``shared`` too, in order.

    SQLite: statements of many rows each (``VALUES (…), (…)``), the shared values bound once
    as numbered parameters that every row names, and so is each column whose value every row
    has alike (equal): binding a value and stepping a statement cost more per row with
    ``executemany``, about as much as the rest of the insert of a narrow row. Statements hold
    :data:`INSERT_CHUNKS` rows, so a few statement texts serve every batch (and stay in the
    connection's statement cache); fewer rows than the smallest go in with one
    ``executemany``. An engine that :attr:`~broadcaster.store.db.Database.copies_inserts`
    gets one ``executemany`` of a plain INSERT.
    """
    if database.copies_inserts:
        names = ", ".join((*shared, *columns))  # the caller's constants, never input
        marks = ", ".join(["?"] * (len(shared) + len(columns)))
        values = tuple(shared.values())
        conn.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({marks})",  # noqa: S608
            [(*values, *row) for row in rows],
        )
        return
    if not rows:
        return
    alike, own, first = dict(shared), [], rows[0]
    for index, name in enumerate(columns):
        value = first[index]
        if any(row[index] != value for row in rows):
            own.append(index)
        else:
            alike[name] = value
    if not own:
        rows = [()] * len(rows)
    elif len(own) < len(columns):
        pick = itemgetter(*own, own[-1])  # a tuple even of one, its last value once more
        rows = [values[:-1] for values in map(pick, rows)]
    names = ", ".join((*alike, *(columns[i] for i in own)))
    start = 0
    for size in INSERT_CHUNKS:
        statement = _multi_row_insert(table, names, len(alike), len(own), size)
        while len(rows) - start >= size:
            chunk = rows[start : start + size]
            conn.execute(statement, [*alike.values(), *chain.from_iterable(chunk)])
            start += size
    if start < len(rows):
        values = tuple(alike.values())
        conn.executemany(
            _multi_row_insert(table, names, len(alike), len(own), 1),
            [(*values, *row) for row in rows[start:]],
        )


@functools.lru_cache(maxsize=64)
def _multi_row_insert(table: str, names: str, shared: int, width: int, size: int) -> str:
    """``INSERT INTO table (names) VALUES`` with ``size`` rows: each names the ``shared``
    parameters ``?1…`` first, then ``width`` of its own."""
    common = [f"?{n}" for n in range(1, shared + 1)]
    rows = []
    for row in range(size):
        own = shared + row * width
        rows.append("(" + ", ".join([*common, *(f"?{own + n}" for n in range(1, width + 1))]) + ")")
    return f"INSERT INTO {table} ({names}) VALUES " + ", ".join(rows)  # noqa: S608


class BatchContents:
    """The ``delivery_contents`` ids of what channels sent, within one transaction: each
    distinct content is encoded and stored (or found) once per batch. A channel may hand many
    deliveries one object, or equal copies of one (a dict comparison costs far less than
    encoding it again)."""

    _RECENT = 4
    """Distinct contents a new object is compared with before it is encoded."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._by_id: dict[int, int] = {}
        self._recent: list[tuple[Mapping[str, Any], int]] = []

    def id_of(self, content: Mapping[str, Any] | None) -> int | None:
        if content is None:
            return None
        found = self._by_id.get(id(content))  # the transitions keep every object alive
        if found is None:
            found = next((n for seen, n in self._recent if seen == content), None)
            if found is None:
                found = self._stored(json.dumps(content, ensure_ascii=False))
                self._recent = [(content, found), *self._recent[: self._RECENT - 1]]
            self._by_id[id(content)] = found
        return found

    def _stored(self, body: str) -> int:
        """The id of the row holding ``body``, added unless one holds it already (another
        node's too: the unique digest decides)."""
        digest = hashlib.sha256(body.encode()).hexdigest()
        self._conn.execute(
            "INSERT INTO delivery_contents (digest, body) VALUES (?, ?)"
            " ON CONFLICT (digest) DO NOTHING",
            (digest, body),
        )
        row = self._conn.execute(
            "SELECT id FROM delivery_contents WHERE digest = ?", (digest,)
        ).fetchone()
        return int(row[0])


_quote = json.encoder.encode_basestring
"""A JSON string literal, other than ASCII kept as it is (``ensure_ascii=False``)."""


def steps_json(steps: Iterable[tuple[str, str | None]]) -> str:
    """The JSON array of ``[to_state, detail]`` pairs, as ``json.dumps(..., ensure_ascii=False)``
    writes it (without its cost per call: a batch encodes one such small array per delivery)."""
    return (
        "["
        + ", ".join(
            f"[{_quote(to_state)}, {'null' if detail is None else _quote(detail)}]"
            for to_state, detail in steps
        )
        + "]"
    )


class BatchHistory:
    """The steps a batch records, gathered per delivery in order."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.count = 0
        """Steps recorded."""
        self._rows: dict[int, list[Any]] = {}

    def add(self, delivery_id: int, from_state: str, to_state: str, detail: str | None) -> None:
        self.count += 1
        row = self._rows.get(delivery_id)
        if row is None:
            self._rows[delivery_id] = [delivery_id, from_state, to_state, detail, None]
            return
        if row[4] is None:
            row[4] = [(row[2], row[3])]
        row[4].append((to_state, detail))
        row[2] = to_state

    def write(self, database: Database, conn: Connection) -> None:
        """Insert one row per delivery, in the order of each delivery's first step."""
        rows = [
            (delivery_id, from_state, to_state, detail, None)
            if steps is None
            else (
                delivery_id,
                from_state,
                to_state,
                "; ".join([d for _, d in steps if d]),
                steps_json(steps),
            )
            for delivery_id, from_state, to_state, detail, steps in self._rows.values()
        ]
        insert_rows(database, conn, "delivery_events", {"at": self.now}, _EVENT_COLUMNS, rows)


_EVENT_COLUMNS = ("delivery_id", "from_state", "to_state", "detail", "steps")
"""The columns of a row of :meth:`BatchHistory.write`, in its order."""


def expand(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each step of ``rows`` (``at``, ``from_state``, ``to_state``, ``detail``, ``steps``, in
    order) as an event of its own: ``at``, ``from_state``, ``to_state``, ``detail``."""
    events: list[dict[str, Any]] = []
    for row in rows:
        at, from_state = row["at"], row["from_state"]
        if row["steps"] is None:
            events.append(
                {
                    "at": at,
                    "from_state": from_state,
                    "to_state": row["to_state"],
                    "detail": row["detail"],
                }
            )
            continue
        for to_state, detail in json.loads(row["steps"]):
            events.append(
                {"at": at, "from_state": from_state, "to_state": to_state, "detail": detail}
            )
            from_state = to_state
    return events
