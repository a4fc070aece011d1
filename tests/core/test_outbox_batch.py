"""Outbox.apply on a batch, on both engines: each transition is judged against the state the
earlier ones in the same batch left, every change is logged in order, and a batch spans many
deliveries."""

from __future__ import annotations

import pytest

from broadcaster.delivery import DeliveryState, Transition
from broadcaster.store.db import Database
from broadcaster.store.outbox import Outbox
from tests.core.support import insert_bare_alert, insert_deliveries

S = DeliveryState


@pytest.fixture
def store(database: Database) -> tuple[Database, Outbox]:
    """Deliveries 1..1200 of alert ``a``, all ``sending``, on the test's engine."""
    db = database

    def setup() -> None:
        with db.transaction() as conn:
            insert_bare_alert(conn)
            insert_deliveries(conn, "loudspeaker", ["sending"] * 1200)

    db.call(setup)
    return db, Outbox(db)


def _history(db: Database, outbox: Outbox, delivery: int) -> list[tuple[str, str]]:
    return [(e["from_state"], e["to_state"]) for e in db.call(outbox.events, delivery)]


def test_a_delivery_goes_through_several_states_in_one_batch(
    store: tuple[Database, Outbox],
) -> None:
    db, outbox = store
    batch = [
        Transition(1, S.ACCEPTED, detail="sent", provider_ref="play-1", content={"a": 1}),
        Transition(1, S.ACCEPTED, detail="box accepted", progress=True),
        Transition(1, S.ACCEPTED, detail="playing", progress=True),
        Transition(1, S.CONFIRMED, detail="played"),
        Transition(1, S.QUEUED, detail="too late: already confirmed"),
    ]
    assert db.call(outbox.apply, batch, 5.0) == 4
    assert _history(db, outbox, 1) == [
        ("sending", "accepted"),
        ("accepted", "accepted"),
        ("accepted", "accepted"),
        ("accepted", "confirmed"),
    ]
    (row,) = db.call(outbox.deliveries, "a", state="confirmed")
    assert row["provider_ref"] == "play-1" and row["content"] == {"a": 1}


def test_a_confirmation_overtaking_the_send_keeps_what_was_sent(
    store: tuple[Database, Outbox],
) -> None:
    db, outbox = store
    batch = [
        Transition(2, S.CONFIRMED, detail="played before send returned"),
        Transition(
            2, S.ACCEPTED, detail="sent", content={"audio": "x"}, warning="no mn", provider_ref="m1"
        ),
        Transition(3, S.CONFIRMED, detail="receipt before send returned"),
        Transition(3, S.ACCEPTED, detail="sent", provider_ref="m2,m3"),
    ]
    assert db.call(outbox.apply, batch, 5.0) == 2
    rows = {r["id"]: r for r in db.call(outbox.deliveries, "a")}
    assert rows[2]["state"] == "confirmed"
    assert rows[2]["content"] == {"audio": "x"} and rows[2]["warning"] == "no mn"
    assert rows[2]["provider_ref"] == "m1"
    assert rows[3]["state"] == "confirmed" and rows[3]["provider_ref"] == "m2,m3"
    assert _history(db, outbox, 2) == [("sending", "confirmed")]


def test_a_batch_larger_than_one_state_read_judges_every_delivery(
    store: tuple[Database, Outbox],
) -> None:
    db, outbox = store
    batch = [Transition(n, S.ACCEPTED, detail="sent") for n in range(1, 1201)]
    batch += [Transition(n, S.CONFIRMED, detail="played") for n in range(1, 1201, 2)]
    batch.append(Transition(9999, S.CONFIRMED, detail="no such delivery"))
    assert db.call(outbox.apply, batch, 5.0) == 1200 + 600
    assert db.call(outbox.summary, "a") == {"loudspeaker": {"accepted": 600, "confirmed": 600}}
    assert _history(db, outbox, 1199) == [("sending", "accepted"), ("accepted", "confirmed")]
    assert _history(db, outbox, 1200) == [("sending", "accepted")]


def test_progress_moves_only_the_time_of_the_last_news_and_is_logged(
    store: tuple[Database, Outbox],
) -> None:
    db, outbox = store
    db.call(outbox.apply, [Transition(3, S.ACCEPTED, detail="sent", provider_ref="p")], 5.0)
    progress = [Transition(3, S.ACCEPTED, detail=d, progress=True) for d in ("accepted", "playing")]
    assert db.call(outbox.apply, progress, 7.0) == 2
    (row,) = [r for r in db.call(outbox.deliveries, "a") if r["id"] == 3]
    assert (row["state"], row["updated_at"], row["provider_ref"]) == ("accepted", 7.0, "p")
    assert [e["detail"] for e in db.call(outbox.events, 3)] == ["sent", "accepted", "playing"]
    # An accepted delivery with recent news is not taken for one whose box went silent.
    assert db.call(outbox.overdue, 9.0, {"loudspeaker": 3.0}) == []
    assert [t.delivery_id for t in db.call(outbox.overdue, 11.0, {"loudspeaker": 3.0})] == [3]


def test_equal_contents_of_many_deliveries_are_stored_each_as_sent(
    store: tuple[Database, Outbox],
) -> None:
    db, outbox = store
    shared = {"audio": "abc", "repeat": 1}
    batch = [Transition(n, S.ACCEPTED, content=dict(shared)) for n in range(1, 6)]
    batch.append(Transition(6, S.ACCEPTED, content={"audio": "abc", "repeat": 2}))
    batch.append(Transition(7, S.ACCEPTED, content=shared, warning="no mn"))
    assert db.call(outbox.apply, batch, 5.0) == 7
    rows = {r["id"]: r for r in db.call(outbox.deliveries, "a", state="accepted")}
    assert [rows[n]["content"] for n in range(1, 8)] == [shared] * 5 + [
        {"audio": "abc", "repeat": 2},
        shared,
    ]
    assert [rows[n]["warning"] for n in (5, 7)] == [None, "no mn"]


def test_state_counts_count_every_delivery_by_channel_and_state(
    store: tuple[Database, Outbox],
) -> None:
    db, outbox = store
    db.call(outbox.apply, [Transition(n, S.ACCEPTED) for n in range(1, 11)], 5.0)
    db.call(outbox.apply, [Transition(n, S.CONFIRMED) for n in range(1, 4)], 6.0)
    assert db.call(outbox.state_counts) == {
        ("loudspeaker", "sending"): 1190,
        ("loudspeaker", "accepted"): 7,
        ("loudspeaker", "confirmed"): 3,
    }
