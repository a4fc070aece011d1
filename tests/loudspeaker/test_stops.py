"""Stops that could not reach their box wait for it: handed over once when it is back, those
expired by then left out, and no more boxes kept than the bound."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from channels.loudspeaker import stops
from channels.loudspeaker.stops import UnsentStops
from drivers.speaker import Stop

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def stop(alert: str, expires_in_s: float) -> Stop:
    return Stop(
        cmd_id=f"stop-{alert}",
        alert_id=alert,
        issued_at=NOW,
        expires_at=NOW + timedelta(seconds=expires_in_s),
    )


def test_a_box_gets_its_unexpired_stops_once() -> None:
    now = [NOW]
    unsent = UnsentStops(clock=lambda: now[0])
    unsent.keep("b1", stop("a", 60))
    unsent.keep("b1", stop("b", 600))
    unsent.keep("b2", stop("c", 60))
    assert len(unsent) == 3
    now[0] += timedelta(seconds=120)
    assert [s.alert_id for s in unsent.take("b1")] == ["b"]
    assert unsent.take("b1") == []
    assert unsent.take("b2") == []  # expired meanwhile
    assert len(unsent) == 0


def test_the_oldest_boxes_are_forgotten_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stops, "BOXES_KEPT", 2)
    unsent = UnsentStops(clock=lambda: NOW)
    for box in ("b1", "b2", "b3"):
        unsent.keep(box, stop(box, 60))
    assert unsent.take("b1") == []
    assert [s.alert_id for s in unsent.take("b3")] == ["b3"]
