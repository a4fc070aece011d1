"""A delivery's history in ``delivery_events``: the steps of one batch written as one row each
per delivery, and read back step by step.

A batch of transitions often carries several steps of one delivery at once (a loudspeaker box
accepts, starts and finishes its playback while the send's result is on its way); all of them
are recorded at the batch's time. :class:`BatchHistory` writes them as one row per delivery
(schema v15): ``from_state`` and ``to_state`` of the first and last step, ``detail`` the steps'
details joined (for readers of the table itself), and ``steps`` the JSON array of each step's
``[to_state, detail]`` in order (NULL for a row of one step). :func:`expand` gives back every
step as its own event, exactly as if each had had a row, so the API and the console show the
same history either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from broadcaster.store.db import Connection


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
            row[4] = [[row[2], row[3]]]
        row[4].append([to_state, detail])
        row[2] = to_state

    def write(self, conn: Connection) -> None:
        """Insert one row per delivery, in the order of each delivery's first step."""
        conn.executemany(
            "INSERT INTO delivery_events (delivery_id, at, from_state, to_state, detail, steps)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (delivery_id, self.now, from_state, to_state, detail, None)
                if steps is None
                else (
                    delivery_id,
                    self.now,
                    from_state,
                    to_state,
                    "; ".join(str(d) for _, d in steps if d),
                    json.dumps(steps, ensure_ascii=False),
                )
                for delivery_id, from_state, to_state, detail, steps in self._rows.values()
            ],
        )


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
