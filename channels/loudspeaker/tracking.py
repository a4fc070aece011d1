"""Which delivery a box's acknowledgement settles (docs/protocols/speaker.md section 3.2).

A play command is tracked under (command id, box id): a command sent to many boxes at once
(a group command, one ``cmd_id`` for every box of its area) settles each box's delivery on
that box's own acks. :class:`AckTracker` turns acks into the core's confirmations:
``accepted``/``started`` are progress, ``finished`` confirms, ``failed`` fails with the box's
reason (``preempted`` when a higher-priority alert cut it off; ``stopped`` after a ``stop``
for the alert confirms it as stopped on request).

Acks that arrive before the channel tracks their command are kept (the newest
``EARLY_KEPT``) and settle it once it is tracked: acks that overtake the send that returns
their command, acks of boxes that got a group command through their area's topic before
their own delivery was claimed, and acks that boxes repeat when they reconnect to a
restarted server (:meth:`AckTracker.track` from the channel's ``resume``).

Past ``PENDING_KEPT`` tracked commands or ``EARLY_KEPT`` early acks the oldest are forgotten,
and the log says so (at most once a minute, with how many): a delivery whose command was
forgotten stays ``accepted`` until the core's confirmation timeout sends it again, and its box
then repeats its latest ack.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from broadcaster.channel import Confirmation, ConfirmationOutcome
from drivers.speaker import AckStage, BoxAck

PENDING_KEPT = 200_000
"""Commands awaiting their box's final ack that are remembered (the oldest are forgotten:
the core sends such a delivery again after its confirmation timeout)."""
EARLY_KEPT = 200_000
"""Acks of untracked commands that are remembered."""

REPORT_EVERY_S = 60.0
"""How often forgotten commands and acks are reported in the log, at most."""

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""(command id, box id)."""


@dataclass(slots=True)
class Pending:
    """A command sent for a delivery; its confirmations wait in ``held`` until its send has
    returned (``sent``), so the core never sees a box's word before the send's result;
    ``settled``: the final one is among them."""

    delivery_id: int
    sent: bool = False
    stopping: bool = False
    held: list[Confirmation] | None = None
    settled: bool = False


class AckTracker:
    """Deliveries awaiting their boxes' acks; ``confirm`` receives what they settle."""

    def __init__(self, confirm: Callable[[Confirmation], None]) -> None:
        self._confirm = confirm
        self._pending: OrderedDict[Key, Pending] = OrderedDict()
        self._by_delivery: dict[int, Key] = {}
        self._early: OrderedDict[Key, list[BoxAck]] = OrderedDict()
        self.forgotten = {"commands": 0, "acks": 0}
        """Tracked commands and early acks forgotten for room, since the last report."""
        self._reported_at: float | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def track(self, cmd_id: str, box_id: str, delivery_id: int, *, sent: bool = False) -> None:
        """Await the acks of ``cmd_id`` on ``box_id`` for ``delivery_id``; acks that came
        first settle it now (held until :meth:`sent` unless ``sent``)."""
        key = (cmd_id, box_id)
        old = self._by_delivery.pop(delivery_id, None)
        if old is not None and old != key:
            self._pending.pop(old, None)
        self._pending[key] = Pending(delivery_id, sent=sent)
        self._pending.move_to_end(key)
        self._by_delivery[delivery_id] = key
        while len(self._pending) > PENDING_KEPT:
            _, forgotten = self._pending.popitem(last=False)
            self._by_delivery.pop(forgotten.delivery_id, None)
            self._forgot("commands")
        for ack in self._early.pop(key, ()):
            self.on_ack(ack)

    def _forgot(self, what: str) -> None:
        self.forgotten[what] += 1
        now = time.monotonic()
        if self._reported_at is not None and now - self._reported_at < REPORT_EVERY_S:
            return
        self._reported_at = now
        log.warning(
            "more commands await their boxes' acks than are kept (%d, and %d early acks):"
            " %d command(s) and %d ack(s) forgotten; their deliveries are sent again after the"
            " confirmation timeout",
            PENDING_KEPT,
            EARLY_KEPT,
            self.forgotten["commands"],
            self.forgotten["acks"],
        )
        self.forgotten = {"commands": 0, "acks": 0}

    def sent(self, cmd_id: str, box_id: str) -> None:
        """The send of the command returned: confirmations held until now go out."""
        key = (cmd_id, box_id)
        entry = self._pending.get(key)
        if entry is None or entry.sent:
            return
        entry.sent = True
        for confirmation in entry.held or ():
            self._confirm(confirmation)
        entry.held = None
        if entry.settled:
            self._drop(key, entry)

    def _drop(self, key: Key, entry: Pending) -> None:
        del self._pending[key]
        if self._by_delivery.get(entry.delivery_id) == key:
            del self._by_delivery[entry.delivery_id]

    def forget(self, cmd_id: str, box_id: str) -> None:
        """The command did not go out (its send failed): stop waiting for its acks."""
        entry = self._pending.pop((cmd_id, box_id), None)
        if entry is not None:
            self._by_delivery.pop(entry.delivery_id, None)

    def stopping(self, delivery_id: int) -> None:
        """A ``stop`` went to the delivery's box: its ``stopped`` failure confirms it."""
        key = self._by_delivery.get(delivery_id)
        entry = self._pending.get(key) if key is not None else None
        if entry is not None:
            entry.stopping = True

    def on_ack(self, ack: BoxAck) -> None:
        """Settle the delivery ``ack`` is for, or keep the ack until its command is tracked."""
        key = (ack.cmd_id, ack.box_id)
        entry = self._pending.get(key)
        if entry is None:
            early = self._early.get(key)
            if early is None:
                self._early[key] = early = []
                while len(self._early) > EARLY_KEPT:
                    self._early.popitem(last=False)
                    self._forgot("acks")
            _keep_latest(early, ack)
            return
        if entry.settled:
            return  # a repeat of the final ack, before the send returned
        confirmation, final = confirmation_of(entry, ack)
        if entry.sent:
            self._confirm(confirmation)
            if final:
                self._drop(key, entry)
            return
        entry.settled = final
        if entry.held is None:
            entry.held = [confirmation]
        else:
            entry.held.append(confirmation)


UNVERIFIED = frozenset({"bad_signature", "malformed"})
"""Refusals of a command the box could not verify (docs/protocols/speaker.md section 3.1,
steps 1-2). They say nothing of the command the server sent: anyone able to put bytes on the
box's path can make it refuse garbage carrying that command's id. So the delivery is sent
again (its next attempt with the box's own key), not failed."""


def _keep_latest(early: list[BoxAck], ack: BoxAck) -> None:
    """Keep ``ack`` among a command's early acks, in place of one of its stage: a box repeats
    its latest acks on every reconnect, and a command's acks are at most one per stage."""
    for index, kept in enumerate(early):
        if kept.stage is ack.stage:
            early[index] = ack
            return
    early.append(ack)


def confirmation_of(entry: Pending, ack: BoxAck) -> tuple[Confirmation, bool]:
    """The confirmation for a box's ack, and whether it settles the delivery."""
    box, source = ack.box_id, ack.source or "url"
    note = f", {ack.reason}" if ack.reason else ""
    if ack.stage is AckStage.ACCEPTED:
        detail = f"box {box} accepted"
        if ack.reason == "preempted":
            detail = f"box {box}: cut off by a more urgent alert, plays again after it"
        return Confirmation(entry.delivery_id, ConfirmationOutcome.PROGRESS, detail), False
    if ack.stage is AckStage.STARTED:
        detail = f"playing on box {box} ({source}{note})"
        return Confirmation(entry.delivery_id, ConfirmationOutcome.PROGRESS, detail), False
    if ack.stage is AckStage.FINISHED:
        detail = f"played on box {box} ({source})"
        return Confirmation(entry.delivery_id, ConfirmationOutcome.CONFIRMED, detail), True
    if ack.reason == "stopped" and entry.stopping:
        detail = f"stopped on box {box} (Cancel or Update of the alert)"
        return Confirmation(entry.delivery_id, ConfirmationOutcome.CONFIRMED, detail), True
    if ack.reason in UNVERIFIED:
        detail = f"box {box} could not verify a command of this id ({ack.reason})"
        return Confirmation(entry.delivery_id, ConfirmationOutcome.RETRY, detail), True
    detail = f"box {box} failed: {ack.reason or 'no reason given'}"
    return Confirmation(entry.delivery_id, ConfirmationOutcome.FAILED, detail), True
