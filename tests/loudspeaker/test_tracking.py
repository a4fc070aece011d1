"""The ack tracker of the loudspeaker channel: acks settle the delivery of their (command id,
box) only, acks that overtake their command's send (all the way to ``finished``) reach the
core after the send's result and in order, and acks of commands not tracked yet settle them
once they are (a box reached through its area's topic before its own delivery was claimed);
commands and acks forgotten for room are reported in the log, at most once a minute."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from broadcaster.channel import Confirmation, ConfirmationOutcome
from channels.loudspeaker import tracking
from channels.loudspeaker.tracking import AckTracker
from drivers.speaker import AckStage, BoxAck

GROUP = "play-group"


def ack(box: str, stage: AckStage, cmd_id: str = GROUP, reason: str | None = None) -> BoxAck:
    return BoxAck(
        box_id=box,
        at=datetime.now(UTC),
        cmd_id=cmd_id,
        alert_id="s,a",
        stage=stage,
        reason=reason,
        source="url",
    )


def outcomes(seen: list[Confirmation]) -> list[tuple[int, ConfirmationOutcome]]:
    return [(c.delivery_id, c.outcome) for c in seen]


def test_one_group_command_settles_each_box_on_its_own_acks() -> None:
    seen: list[Confirmation] = []
    tracker = AckTracker(seen.append)
    tracker.track(GROUP, "b1", 1)
    tracker.track(GROUP, "b2", 2)
    tracker.sent(GROUP, "b1")
    tracker.sent(GROUP, "b2")
    tracker.on_ack(ack("b2", AckStage.FINISHED))
    tracker.on_ack(ack("b3", AckStage.FINISHED))  # a box this command was not sent for
    tracker.on_ack(ack("b1", AckStage.FAILED, reason="media_unavailable"))
    assert outcomes(seen) == [(2, ConfirmationOutcome.CONFIRMED), (1, ConfirmationOutcome.FAILED)]
    assert len(tracker) == 0


def test_acks_that_overtake_the_send_wait_for_it() -> None:
    seen: list[Confirmation] = []
    tracker = AckTracker(seen.append)
    tracker.track(GROUP, "b1", 1)
    for stage in (AckStage.ACCEPTED, AckStage.STARTED, AckStage.FINISHED, AckStage.FINISHED):
        tracker.on_ack(ack("b1", stage))
    assert seen == []
    tracker.sent(GROUP, "b1")
    progress, confirmed = ConfirmationOutcome.PROGRESS, ConfirmationOutcome.CONFIRMED
    assert outcomes(seen) == [(1, progress), (1, progress), (1, confirmed)]
    assert len(tracker) == 0


def test_acks_before_their_command_is_tracked_settle_it_when_it_is() -> None:
    seen: list[Confirmation] = []
    tracker = AckTracker(seen.append)
    tracker.on_ack(ack("b1", AckStage.STARTED))
    tracker.on_ack(ack("b1", AckStage.FINISHED))
    tracker.track(GROUP, "b1", 7, sent=True)  # after a restart: already sent
    assert outcomes(seen) == [(7, ConfirmationOutcome.PROGRESS), (7, ConfirmationOutcome.CONFIRMED)]
    tracker.track(GROUP, "b2", 8)
    tracker.forget(GROUP, "b2")  # its send failed
    tracker.on_ack(ack("b2", AckStage.FINISHED))
    assert len(seen) == 2 and len(tracker) == 0


def test_a_box_repeating_its_acks_keeps_one_early_ack_per_stage() -> None:
    # A box repeats its latest acks on every reconnect: the tracker keeps one of each stage.
    seen: list[Confirmation] = []
    tracker = AckTracker(seen.append)
    for _ in range(1000):
        tracker.on_ack(ack("b1", AckStage.ACCEPTED))
        tracker.on_ack(ack("b1", AckStage.FINISHED))
    assert sum(len(acks) for acks in tracker._early.values()) == 2
    tracker.track(GROUP, "b1", 7, sent=True)
    assert outcomes(seen) == [
        (7, ConfirmationOutcome.PROGRESS),
        (7, ConfirmationOutcome.CONFIRMED),
    ]


@pytest.mark.parametrize("reason", ["bad_signature", "malformed"])
def test_a_command_the_box_could_not_verify_is_sent_again_not_failed(reason: str) -> None:
    # Garbage naming the command's id makes a box refuse it so: no word on the real command.
    seen: list[Confirmation] = []
    tracker = AckTracker(seen.append)
    tracker.track(GROUP, "b1", 7, sent=True)
    tracker.on_ack(ack("b1", AckStage.FAILED, reason=reason))
    assert outcomes(seen) == [(7, ConfirmationOutcome.RETRY)]
    assert reason in seen[0].detail and len(tracker) == 0
    tracker.track(GROUP, "b1", 8, sent=True)
    tracker.on_ack(ack("b1", AckStage.FAILED, reason="media_unavailable"))
    assert outcomes(seen)[-1] == (8, ConfirmationOutcome.FAILED)


def test_a_stop_confirms_the_stopped_delivery() -> None:
    seen: list[Confirmation] = []
    tracker = AckTracker(seen.append)
    tracker.track(GROUP, "b1", 1, sent=True)
    tracker.stopping(1)
    tracker.on_ack(ack("b1", AckStage.FAILED, reason="stopped"))
    assert outcomes(seen) == [(1, ConfirmationOutcome.CONFIRMED)]
    assert "stopped on box b1" in seen[0].detail


def test_commands_and_acks_forgotten_for_room_are_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tracking, "PENDING_KEPT", 2)
    monkeypatch.setattr(tracking, "EARLY_KEPT", 2)
    caplog.set_level(logging.WARNING, logger=tracking.__name__)
    seen: list[Confirmation] = []
    tracker = AckTracker(seen.append)
    for n in range(1, 4):
        tracker.track(f"play-{n}", "b1", n, sent=True)
    assert [r.getMessage() for r in caplog.records] == [
        "more commands await their boxes' acks than are kept (2, and 2 early acks): 1"
        " command(s) and 0 ack(s) forgotten; their deliveries are sent again after the"
        " confirmation timeout"
    ]
    tracker.on_ack(ack("b1", AckStage.FINISHED, cmd_id="play-1"))  # forgotten: kept as early
    for n in range(5, 8):
        tracker.on_ack(ack("b1", AckStage.FINISHED, cmd_id=f"play-{n}"))
    assert len(caplog.records) == 1  # within the minute: counted, not logged again
    assert tracker.forgotten == {"commands": 0, "acks": 2}
    tracker.on_ack(ack("b1", AckStage.FINISHED, cmd_id="play-3"))
    assert outcomes(seen) == [(3, ConfirmationOutcome.CONFIRMED)]
