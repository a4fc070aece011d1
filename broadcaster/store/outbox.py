"""The delivery outbox: claiming due deliveries, recording transitions, sweeping and reporting.

Synchronous; runs on the database thread. Every state change goes through
:meth:`Outbox.apply`, which checks it against :data:`~broadcaster.delivery.ALLOWED_FROM` and
appends it to ``delivery_events``; a change that is no longer allowed (a late result for a
delivery already cancelled or expired) is dropped, so the log never contradicts the state.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from broadcaster.delivery import ALLOWED_FROM, DeliveryState, Target, Transition
from broadcaster.store.batch import BatchContents, BatchHistory, expand, write_changes
from broadcaster.store.db import Connection, Database
from broadcaster.store.targets import KnownTargets


class ClaimedDelivery(NamedTuple):
    """A delivery handed to its channel (immutable; a claim makes thousands at once, and a
    named tuple is made three times faster than a frozen dataclass)."""

    id: int
    alert_id: str
    channel: str
    target: Target
    part: int
    attempts: int
    idempotency_key: str
    expires_at: float


_CLAIMED_COLUMNS = (
    "d.id, d.alert_id, d.channel, d.target, d.part, d.attempts, d.idempotency_key, d.expires_at"
)
"""The columns of ``deliveries d`` that :func:`_claimed` reads, in its order."""


def _claimed(row: Iterable[Any], known: KnownTargets, attempt: int = 0) -> ClaimedDelivery:
    """The delivery of a row of :data:`_CLAIMED_COLUMNS`; ``attempt``: 1 when the row was
    read before the claim counted its attempt."""
    delivery_id, alert_id, channel, target, part, attempts, key, expires_at = row
    target = known.from_snapshot(target)
    return ClaimedDelivery(
        delivery_id, alert_id, channel, target, part, attempts + attempt, key, expires_at
    )


class Outbox:
    """Deliveries in the store (call on the database thread)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def claim_due(self, channel: str, now: float, limit: int) -> list[ClaimedDelivery]:
        """Move up to ``limit`` due deliveries of ``channel`` to ``sending`` and return them.

        Due: queued, next attempt reached, alert active and not expired, and not kept for
        another node (:attr:`~broadcaster.delivery.Transition.for_node`) unless that keep has
        run out. Most urgent first.
        """
        with self.database.transaction() as conn:
            rows = conn.execute(
                f"SELECT {_CLAIMED_COLUMNS} FROM deliveries d"  # noqa: S608
                " WHERE d.channel = ? AND d.state = 'queued' AND d.next_attempt_at <= ?"
                " AND d.expires_at > ?"
                " AND d.alert_id IN (SELECT id FROM alerts WHERE state = 'active')"
                " AND (d.for_node IS NULL OR d.for_node = ? OR d.for_until <= ?)"
                " ORDER BY d.priority, d.next_attempt_at, d.id LIMIT ?"
                + self.database.skip_locked("d"),
                (channel, now, now, self.database.node, now, limit),
            ).fetchall()
            ids = json.dumps([r[0] for r in rows])
            conn.execute(
                "UPDATE deliveries SET state = 'sending', attempts = attempts + 1,"  # noqa: S608
                " updated_at = ?, claimed_by = ?, lease_until = ? WHERE id IN ("
                + self.database.int_list()
                + ")",
                (now, self.database.node, now + self.database.lease_seconds, ids),
            )
            conn.execute(
                "INSERT INTO delivery_events (delivery_id, at, from_state, to_state, detail)"  # noqa: S608
                " SELECT id, ?, 'queued', 'sending', 'attempt ' || attempts FROM deliveries"
                " WHERE id IN (" + self.database.int_list() + ") ORDER BY id",
                (now, ids),
            )
        known = self.database.known
        return [_claimed(r, known, 1) for r in rows]

    def get(self, delivery_id: int) -> ClaimedDelivery | None:
        row = self.database.conn.execute(
            f"SELECT {_CLAIMED_COLUMNS} FROM deliveries d WHERE d.id = ?",  # noqa: S608
            (delivery_id,),
        ).fetchone()
        return None if row is None else _claimed(row, self.database.known)

    def forward(
        self, delivery_id: int, source: str, channel: str, reason: str, now: float
    ) -> int | None:
        """Queue the target and part of ``source``'s delivery ``delivery_id`` for ``channel``
        in the same alert, due now; the id of that delivery (an existing one is kept), None
        when there is no such delivery of an active alert."""
        with self.database.transaction() as conn:
            row = conn.execute(
                "SELECT d.alert_id, d.target_id, d.part, d.target, d.priority, d.expires_at"
                " FROM deliveries d JOIN alerts a ON a.id = d.alert_id"
                " WHERE d.id = ? AND d.channel = ? AND a.state = 'active'",
                (delivery_id, source),
            ).fetchone()
            if row is None:
                return None
            existing = conn.execute(
                "SELECT id FROM deliveries WHERE alert_id = ? AND channel = ? AND target_id = ?"
                " AND part = ?",
                (row["alert_id"], channel, row["target_id"], row["part"]),
            ).fetchone()
            if existing is not None:
                return int(existing["id"])
            self.database.serialize(conn, "deliveries.id")
            new_id = int(
                conn.execute("SELECT coalesce(max(id), 0) + 1 FROM deliveries").fetchone()[0]
            )
            suffix = f"/{row['part']}" if row["part"] else ""
            conn.execute(
                "INSERT INTO deliveries (id, alert_id, channel, target_id, part, target, state,"
                " priority, next_attempt_at, expires_at, idempotency_key, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
                (
                    new_id,
                    row["alert_id"],
                    channel,
                    row["target_id"],
                    row["part"],
                    row["target"],
                    row["priority"],
                    now,
                    row["expires_at"],
                    f"{row['alert_id']}:{channel}:{row['target_id']}{suffix}",
                    now,
                ),
            )
            conn.execute(
                "INSERT INTO delivery_events (delivery_id, at, from_state, to_state, detail)"
                " VALUES (?, ?, NULL, 'queued', ?)",
                (new_id, now, f"fallback for {source} delivery {delivery_id}: {reason}"),
            )
        return new_id

    def retry_now(
        self,
        channel: str,
        target_ids: Sequence[str],
        now: float,
        reconnected: Sequence[str] | None = None,
    ) -> dict[str, int]:
        """Bring forward the next attempt of the targets' queued deliveries to ``now``, and
        queue again, due now, those sent and not confirmed yet (``accepted``) of active alerts
        to the targets of ``reconnected`` (None: all of ``target_ids``).

        For devices that just came back: their retries need not wait out their backoff, and
        what was sent to them may have been lost with the connection they had (a broker that
        keeps no queue for them, a TCP write the device never read), so it is sent again
        rather than after the confirmation timeout; the device carries out a repeated command
        once. Returns how many deliveries each target has brought forward (targets with none
        are left out). One statement per state, over the channel's queued and unconfirmed
        deliveries, however many targets.
        """
        targets = json.dumps(list(target_ids))
        again_to = list(target_ids if reconnected is None else reconnected)
        with self.database.transaction() as conn:
            rows = conn.execute(
                "UPDATE deliveries SET next_attempt_at = ? WHERE channel = ?"  # noqa: S608
                " AND state = 'queued' AND next_attempt_at > ? AND target_id IN ("
                + self.database.text_list()
                + ")"
                " RETURNING target_id",
                (now, channel, now, targets),
            ).fetchall()
        counts = Counter(row["target_id"] for row in rows)
        if not again_to:
            return dict(counts)
        unconfirmed = self.database.query(
            "SELECT d.id, d.target_id FROM deliveries d JOIN alerts a ON a.id = d.alert_id"  # noqa: S608
            " WHERE d.channel = ? AND d.state = 'accepted' AND d.expires_at > ?"
            " AND a.state = 'active' AND d.target_id IN (" + self.database.text_list() + ")",
            (channel, now, json.dumps(again_to)),
        )
        resend = [
            Transition(
                row["id"],
                DeliveryState.QUEUED,
                detail="device back before confirming: sent again",
                next_attempt_at=now,
            )
            for row in unconfirmed
        ]
        if resend and self.apply(resend, now):
            counts.update(row["target_id"] for row in unconfirmed)
        return dict(counts)

    def next_due_at(self, channel: str, now: float) -> float | None:
        """When the next delivery of ``channel`` this node may claim is due (those kept for
        another node count from when their keep runs out, at most a poll later)."""
        row = self.database.conn.execute(
            "SELECT min(d.next_attempt_at) FROM deliveries d JOIN alerts a ON a.id = d.alert_id"
            " WHERE d.channel = ? AND d.state = 'queued' AND a.state = 'active'"
            " AND (d.for_node IS NULL OR d.for_node = ? OR d.for_until <= ?)",
            (channel, self.database.node, now),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def apply(self, transitions: Sequence[Transition], now: float) -> int:
        """Apply the allowed transitions in one transaction; returns how many took effect.

        The current states are read (and, on a shared store, locked) with one statement and
        each transition is checked, in order, against the state the ones before it left. What
        the batch changes in each delivery is then written with one statement for the whole
        batch (several transitions of one delivery make one change: the last state, and the
        last of each value given), and the ``delivery_events`` rows with another, one row per
        delivery holding its steps in order (:mod:`broadcaster.store.batch`).
        News that changes nothing but the time (a device's progress) only moves ``updated_at``.
        """
        changes: dict[int, list[Any]] = {}
        history = BatchHistory(now)
        late_content: list[tuple[Any, ...]] = []
        touched: set[int] = set()
        routed: dict[str, list[int]] = {}
        with self.database.transaction() as conn:
            contents = BatchContents(conn)
            states = self._states(conn, {t.delivery_id for t in transitions})
            add_step, allowed_from, names = history.add, ALLOWED_FROM, _NAMES
            for t in transitions:
                delivery_id, to_state = t.delivery_id, t.to_state
                current = states.get(delivery_id)
                if current is None or (
                    current != to_state if t.progress else current not in allowed_from[to_state]
                ):
                    late = (t.content, t.warning, t.provider_ref)
                    if current is not None and any(v is not None for v in late):
                        # The device confirmed before ``send`` returned: keep what was sent
                        # and the provider's reference for it.
                        content_id = contents.id_of(t.content)
                        late_content.append((content_id, t.warning, t.provider_ref, delivery_id))
                    continue
                states[delivery_id] = to_state
                add_step(delivery_id, current, to_state, t.detail or t.last_error)
                if current == to_state and _only_progress(t):
                    touched.add(delivery_id)  # keeps the confirmation timeout at bay
                    continue
                values = [
                    names[to_state],
                    t.last_error,
                    contents.id_of(t.content),
                    t.warning,
                    t.provider_ref,
                    t.next_attempt_at,
                ]
                change = changes.get(delivery_id)
                if change is None:
                    changes[delivery_id] = values
                else:  # a later transition of the delivery: its values win where given
                    change[:] = [
                        old if new is None else new for old, new in zip(change, values, strict=True)
                    ]
                if t.for_node is not None:
                    routed.setdefault(t.for_node, []).append(delivery_id)
            write_changes(self.database, conn, changes, now)
            for node, ids in routed.items():  # kept for that node until a lease has passed
                conn.execute(
                    "UPDATE deliveries SET for_node = ?, for_until = ? WHERE id IN ("  # noqa: S608
                    + self.database.int_list()
                    + ")",
                    (node, now + self.database.lease_seconds, json.dumps(ids)),
                )
            history.write(self.database, conn)
            touched.difference_update(changes)
            if touched:
                conn.execute(
                    "UPDATE deliveries SET updated_at = ? WHERE id IN ("  # noqa: S608
                    + self.database.int_list()
                    + ")",
                    (now, json.dumps(sorted(touched))),
                )
            conn.executemany(
                "UPDATE deliveries SET content_id = coalesce(content_id, ?),"
                " warning = coalesce(warning, ?), provider_ref = coalesce(provider_ref, ?)"
                " WHERE id = ?",
                late_content,
            )
        return history.count

    def _states(self, conn: Connection, ids: Collection[int]) -> dict[int, str]:
        """The states of deliveries ``ids``, locked for this transaction on a shared store."""
        if not ids:
            return {}
        rows = conn.execute(
            "SELECT id, state FROM deliveries WHERE id IN ("  # noqa: S608
            + self.database.int_list()
            + ")"
            + self.database.locked(),
            (json.dumps(sorted(ids)),),
        )
        return dict(rows)  # (id, state) pairs: an integer and a text on either engine

    def awaiting_confirmation(self, channel: str) -> list[ClaimedDelivery]:
        """Deliveries of ``channel`` accepted by their device and not yet confirmed, of alerts
        still active, longest waiting first (after a restart, the channel tracks them again)."""
        rows = self.database.conn.execute(
            f"SELECT {_CLAIMED_COLUMNS} FROM deliveries d"  # noqa: S608
            " JOIN alerts a ON a.id = d.alert_id"
            " WHERE d.channel = ? AND d.state = 'accepted' AND a.state = 'active'"
            " ORDER BY d.updated_at, d.id",
            (channel,),
        )
        return [_claimed(r, self.database.known) for r in rows]

    def renew_leases(self, now: float) -> int:
        """Extend the leases of the deliveries this node is sending once half their time is
        gone (so each is renewed about twice per lease, not at every call); returns how many."""
        lease = self.database.lease_seconds
        return self.database.conn.execute(
            "UPDATE deliveries SET lease_until = ? WHERE state = 'sending' AND claimed_by = ?"
            " AND lease_until < ?",
            (now + lease, self.database.node, now + lease / 2),
        ).rowcount

    def release_leases(self, now: float) -> int:
        """At a clean stop: end this node's leases on what it still had in flight, so another
        node's sweep resumes those deliveries (same key) now instead of when the leases would
        have run out; returns how many."""
        return self.database.conn.execute(
            "UPDATE deliveries SET lease_until = ? WHERE state = 'sending' AND claimed_by = ?"
            " AND lease_until > ?",
            (now, self.database.node, now),
        ).rowcount

    def recover_in_flight(self, now: float) -> int:
        """At start: deliveries left ``sending`` go back to ``queued`` (same key). On a store
        shared by several nodes, only those this node claimed or whose lease ran out."""
        sql = "SELECT id FROM deliveries WHERE state = 'sending'"
        params: tuple[Any, ...] = ()
        if self.database.shared:
            sql += " AND (claimed_by IS NULL OR claimed_by = ? OR lease_until <= ?)"
            params = (self.database.node, now)
        rows = self.database.query(sql, params)
        return self.apply(
            [
                Transition(
                    r["id"],
                    DeliveryState.QUEUED,
                    detail="resumed after restart",
                    next_attempt_at=now,
                )
                for r in rows
            ],
            now,
        )

    def overdue(self, now: float, confirm_timeouts: Mapping[str, float]) -> list[Transition]:
        """Transitions for deliveries whose time is up.

        Sending under a lease that ran out (its node stopped) → queued again, with the same
        idempotency key; queued or accepted past their expiry → expired; accepted without
        a confirmation for longer than the channel's confirmation timeout → queued again for
        another attempt.
        """
        found: list[Transition] = [
            Transition(
                row["id"],
                DeliveryState.QUEUED,
                detail=f"lease of node {row['claimed_by']} ran out; resumed",
                next_attempt_at=now,
            )
            for row in self.database.query(
                "SELECT id, claimed_by FROM deliveries WHERE state = 'sending'"
                " AND lease_until <= ?",
                (now,),
            )
        ]
        for row in self.database.query(
            "SELECT id FROM deliveries WHERE state IN ('queued', 'accepted') AND expires_at <= ?",
            (now,),
        ):
            found.append(Transition(row["id"], DeliveryState.EXPIRED, detail="alert expired"))
        # Through the alerts stopped and not expired (queued deliveries of an expired alert
        # expire above), not through every queued delivery or every alert ever stopped.
        for row in self.database.query(
            "SELECT d.id, a.state FROM alerts a JOIN deliveries d ON d.alert_id = a.id"
            " WHERE a.state IN ('cancelled', 'superseded') AND a.expires_at > ?"
            " AND d.state = 'queued'",
            (now,),
        ):
            found.append(Transition(row["id"], DeliveryState.CANCELLED, detail=row["state"]))
        for channel, timeout in confirm_timeouts.items():
            for row in self.database.query(
                "SELECT id FROM deliveries WHERE channel = ? AND state = 'accepted'"
                " AND updated_at <= ? AND expires_at > ?",
                (channel, now - timeout, now),
            ):
                found.append(
                    Transition(
                        row["id"],
                        DeliveryState.QUEUED,
                        last_error=f"no confirmation within {timeout:g} s",
                        next_attempt_at=now,
                    )
                )
        return found

    def summary(self, alert_id: str) -> dict[str, dict[str, int]]:
        rows = self.database.query(
            "SELECT channel, state, count(*) AS n FROM deliveries WHERE alert_id = ?"
            " GROUP BY channel, state ORDER BY channel, state",
            (alert_id,),
        )
        result: dict[str, dict[str, int]] = {}
        for r in rows:
            result.setdefault(r["channel"], {})[r["state"]] = r["n"]
        return result

    def deliveries(
        self,
        alert_id: str,
        *,
        state: str | None = None,
        channels: Sequence[str] | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        sql = (
            "SELECT d.id, d.channel, d.target_id, d.part, d.target, d.state, d.attempts,"
            " d.next_attempt_at, d.last_error, d.warning, d.provider_ref, d.idempotency_key,"
            " d.updated_at, c.body AS content"
            " FROM deliveries d LEFT JOIN delivery_contents c ON c.id = d.content_id"
            " WHERE d.alert_id = ?"
        )
        params: list[Any] = [alert_id]
        if state:
            sql += " AND d.state = ?"
            params.append(state)
        if channels is not None:
            sql += " AND d.channel IN (" + ", ".join(["?"] * len(channels)) + ")"
            params += channels
        sql += " ORDER BY d.id LIMIT ? OFFSET ?"
        params += [limit, offset]
        rows = self.database.query(sql, params)
        for r in rows:
            target = json.loads(r.pop("target"))
            r["target_name"] = target.get("name")
            r["division"] = target.get("division")
            r["content"] = None if r["content"] is None else json.loads(r["content"])
        return rows

    def events(self, delivery_id: int) -> list[dict[str, Any]]:
        """The delivery's history, step by step, oldest first."""
        return expand(
            self.database.conn.execute(
                "SELECT at, from_state, to_state, detail, steps FROM delivery_events"
                " WHERE delivery_id = ? ORDER BY id",
                (delivery_id,),
            )
        )

    def state_counts(self) -> dict[tuple[str, str], int]:
        # Grouped in the order of deliveries_alert (no sort of every delivery), summed here.
        rows = self.database.query(
            "SELECT channel, state, count(*) AS n FROM deliveries GROUP BY alert_id, channel, state"
        )
        counts: Counter[tuple[str, str]] = Counter()
        for r in rows:
            counts[r["channel"], r["state"]] += int(r["n"])
        return dict(counts)

    def warning_counts(self) -> dict[str, int]:
        """Deliveries that carry a warning, by channel."""
        rows = self.database.query(
            "SELECT channel, count(*) AS n FROM deliveries WHERE warning IS NOT NULL"
            " GROUP BY channel"
        )
        return {r["channel"]: r["n"] for r in rows}

    def channel_of(self, delivery_id: int) -> str | None:
        row = self.database.conn.execute(
            "SELECT channel FROM deliveries WHERE id = ?", (delivery_id,)
        ).fetchone()
        return None if row is None else str(row["channel"])


_NAMES = {state: str(state) for state in DeliveryState}
"""Each state's text, as stored (a look-up costs less than ``str`` of the enum)."""


def _only_progress(t: Transition) -> bool:
    """Whether ``t`` changes nothing but the time of the delivery's last news."""
    return (
        t.last_error is None
        and t.provider_ref is None
        and t.content is None
        and t.warning is None
        and t.next_attempt_at is None
    )
