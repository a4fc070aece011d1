"""Sending a claimed batch of loudspeaker deliveries in one call (docs/protocols/speaker.md
sections 2.3 and 4).

The batch is split by programme (alert, languages, expiry: :mod:`channels.loudspeaker
.programmes`), then by the area whose key signs the boxes' commands
(:mod:`channels.loudspeaker.groups`). For each such group the play command is signed and
encoded once and the same bytes go to every box of the group; a box without area keys gets its
own signed command. The command goes out at once, while the warning renders (its audio comes
sealed, section 5.1): a box holding the attention clip starts it on arrival. When its audio
is retained on MQTT, each ``to`` it goes to over MQTT is noted first (``noted``: one per area,
one per box with its own key), for the seal note there (:mod:`channels.loudspeaker
.retained_audio`). Each delivery's result is ``accepted`` once its box's transport took the
command (TCP written, MQTT PUBACK from the broker) and the render has said what the box will
play; no result waits for a box, whose acks settle the delivery later through
:class:`~channels.loudspeaker.tracking.AckTracker`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import NamedTuple

from broadcaster.channel import OutgoingDelivery, SendOutcome, SendResult
from broadcaster.errors import (
    ChannelError,
    DeviceTimeoutError,
    DeviceUnavailableError,
    TargetRejectedError,
)
from channels.loudspeaker import commands
from channels.loudspeaker.groups import PlannedAreas, group_command_id
from channels.loudspeaker.programmes import Programme, ProgrammeCache, Told, programme_key
from channels.loudspeaker.tracking import AckTracker
from drivers.speaker import (
    BoxOfflineError,
    BoxRegistration,
    SpeakerError,
    SpeakerHub,
    SpeakerTimeoutError,
    UnknownBoxError,
)
from drivers.speaker.codec import area_target, box_target, encode_command

log = logging.getLogger(__name__)

_SENT_KEPT = 4096
"""Group commands remembered as sent beyond their batch: (command id, area topic or group)."""
_ALERTS_KEPT = 256
"""Alerts whose area topics (each with its signing area and key) are remembered for a stop."""


class Member(NamedTuple):
    """One delivery of a batch (at ``position``) and its box: ``areas`` are the box's group
    areas (signed with the first) when the server holds their keys, empty for a box with its
    own key only."""

    position: int
    delivery: OutgoingDelivery
    box: BoxRegistration
    areas: tuple[str, ...]
    area_key: bytes | None


Outcome = SendResult | Exception
Reach = dict[str, "SpeakerError | None"]
"""Per box (or area topic) a group command was sent to once: the error, or None."""
Sent = list[tuple[Member, "SpeakerError | None"]]
"""Per member a command was handed to: the error of its box's transport, or None."""
Reached = tuple[str, bytes, list[str] | None]
"""The signing area and key of a group command and the TCP boxes it went to (None: an area
topic)."""


class BatchSender:
    """Sends batches for one channel; see the module docstring."""

    def __init__(
        self,
        channel: str,
        programmes: ProgrammeCache,
        tracker: AckTracker,
        planned: PlannedAreas,
        offline_retry: Callable[[], float | None],
        noted: Callable[[str | None, str], None],
    ) -> None:
        self._channel = channel
        self._noted = noted
        self._programmes = programmes
        self._tracker = tracker
        self._planned = planned
        self._offline_retry = offline_retry
        self._reached: OrderedDict[str, dict[str, Reached]] = OrderedDict()
        self._stopped: OrderedDict[str, None] = OrderedDict()
        self._sent: OrderedDict[tuple[str, str], asyncio.Future[Reach]] = OrderedDict()

    async def send(
        self, hub: SpeakerHub, members: Sequence[Member], results: list[Outcome]
    ) -> None:
        """Send every member's delivery; its result goes to ``results[member.position]``. Acks
        that came meanwhile are released last, so the core records each send's result before
        its box's word: the caller must return the results without awaiting anything."""
        by_programme: dict[tuple[object, ...], list[Member]] = {}
        for member in members:
            by_programme.setdefault(programme_key(member.delivery), []).append(member)
        await asyncio.gather(
            *(self._programme(hub, group, results) for group in by_programme.values())
        )
        for member in members:
            result = results[member.position]
            if isinstance(result, SendResult) and result.provider_ref is not None:
                self._tracker.sent(result.provider_ref, member.box.box_id)

    async def _programme(
        self, hub: SpeakerHub, members: list[Member], results: list[Outcome]
    ) -> None:
        try:
            programme = await self._programmes.get(members[0].delivery)
        except Exception as exc:
            for member in members:
                results[member.position] = exc
            return
        if members[0].delivery.message.id in self._stopped:
            # A Cancel or Update stopped the alert after this batch was claimed: no play
            # command follows the boxes' stop.
            for member in members:
                results[member.position] = DeviceUnavailableError("the alert was stopped")
            return
        groups: dict[str, list[Member]] = {}
        for member in members:
            groups.setdefault(member.areas[0] if member.areas else "", []).append(member)
        alone = groups.pop("", [])
        jobs = [self._group(hub, programme, area, group, results) for area, group in groups.items()]
        if alone:
            jobs.append(self._alone(hub, programme, alone, results))
        sent = await asyncio.gather(*jobs)
        told = await programme.report()
        for sends in sent:
            for member, cmd_id in sends:
                results[member.position] = self._accepted(member, cmd_id, told)

    async def _group(
        self,
        hub: SpeakerHub,
        programme: Programme,
        area: str,
        members: list[Member],
        results: list[Outcome],
    ) -> list[tuple[Member, str]]:
        first = members[0]
        assert first.area_key is not None
        cmd_id = group_command_id("play", self._channel, first.delivery, area)
        target = area_target(area)
        data = programme.signed(cmd_id, target, first.area_key)
        if programme.audio_topic is not None and any(m.box.transport == "mqtt" for m in members):
            self._noted(programme.audio_topic, target)
        sends = [(member, cmd_id) for member in members]
        return await self._play(sends, lambda: self._deliver(hub, data, cmd_id, members), results)

    async def _alone(
        self, hub: SpeakerHub, programme: Programme, members: list[Member], results: list[Outcome]
    ) -> list[tuple[Member, str]]:
        """Each box's own play command, signed with its key, all sent in one call."""
        own = [self._own("play", member) for member in members]
        signed = [(m, programme.template.sign(*o)) for m, o in zip(members, own, strict=True)]
        if programme.audio_topic is not None:
            for member, (_, target, _) in zip(members, own, strict=True):
                if member.box.transport == "mqtt":
                    self._noted(programme.audio_topic, target)
        sends = [(member, cmd_id) for member, (cmd_id, _, _) in zip(members, own, strict=True)]
        return await self._play(sends, lambda: self._deliver_each(hub, signed), results)

    @staticmethod
    def _own(kind: str, member: Member) -> tuple[str, str, bytes]:
        """The command id, target and key of a ``kind`` command to the member's box alone."""
        box = member.box
        return commands.command_id(kind, member.delivery), box_target(box.box_id), box.key

    async def _play(
        self,
        sends: list[tuple[Member, str]],
        deliver: Callable[[], Awaitable[Sent]],
        results: list[Outcome],
    ) -> list[tuple[Member, str]]:
        """Track each (member, command id) of ``sends`` and ``deliver`` them; a member whose
        box's transport failed gets its error in ``results``. The (member, command id) sent."""
        for member, cmd_id in sends:
            self._tracker.track(cmd_id, member.box.box_id, member.delivery.id)
        try:
            sent = await deliver()
        except BaseException:
            for member, cmd_id in sends:
                self._tracker.forget(cmd_id, member.box.box_id)
            raise
        ids = {member.position: cmd_id for member, cmd_id in sends}
        taken = []
        for member, error in sent:
            box, cmd_id = member.box, ids[member.position]
            if error is None:
                taken.append((member, cmd_id))
                continue
            self._tracker.forget(cmd_id, box.box_id)
            results[member.position] = self._error(box.box_id, error)
        return taken

    @staticmethod
    def _accepted(member: Member, cmd_id: str, told: Told) -> SendResult:
        box = member.box
        return SendResult(
            SendOutcome.ACCEPTED,
            provider_ref=cmd_id,
            detail=f"sent to box {box.box_id} over {box.transport}: {told.what}",
            content=told.content,
            warnings=told.warnings,
        )

    @staticmethod
    async def _deliver_each(hub: SpeakerHub, signed: list[tuple[Member, bytes]]) -> Sent:
        """Hand each member's own signed command to its box, all in one call."""
        errors = await hub.send_each([(member.box.box_id, data) for member, data in signed])
        return [(member, error) for (member, _), error in zip(signed, errors, strict=True)]

    async def _deliver(
        self, hub: SpeakerHub, data: bytes, cmd_id: str, members: list[Member]
    ) -> Sent:
        """Hand ``data`` to every member's box: over MQTT once to an area topic whose every
        box the alert selected, over TCP once to every box of the group the alert selected
        (a retry, and a box those did not reach, gets its own), else to each box."""
        done: Sent = []
        each: list[Member] = []
        selected: dict[tuple[str, str, tuple[str, ...]], frozenset[str]] = {}
        reached: dict[object, Reach] = {}
        for member in members:
            delivery, box_id = member.delivery, member.box.box_id
            if not member.areas or delivery.attempt > 1 or member.area_key is None:
                each.append(member)
                continue
            languages = tuple(delivery.target.languages)
            signer = member.areas[0]
            if member.box.transport == "tcp":
                planned = (delivery.message.id, signer, languages)
                if planned not in selected:
                    selected[planned] = frozenset(self._planned.direct(*planned))
                if box_id in selected[planned]:
                    if planned not in reached:
                        group = self._planned.direct(*planned)
                        where = f"tcp:{signer}"
                        reached[planned] = await self._once(hub, cmd_id, where, data, group)
                        await self._remember(hub, delivery, where, (signer, member.area_key, group))
                    if reached[planned].get(box_id, True) is None:
                        done.append((member, None))
                        continue
                each.append(member)
                continue
            area = ""
            if member.box.transport == "mqtt":
                area = self._planned.covered(delivery.message.id, member.areas, languages)
            if not area:
                each.append(member)
                continue
            if area not in reached:
                reached[area] = await self._once(hub, cmd_id, area, data, None)
                await self._remember(hub, delivery, area, (signer, member.area_key, None))
            done.append((member, reached[area].get(area)))
        if each:
            errors = await hub.send_same([m.box.box_id for m in each], data)
            done += zip(each, errors, strict=True)
        return done

    async def _remember(
        self, hub: SpeakerHub, delivery: OutgoingDelivery, where: str, reached: Reached
    ) -> None:
        """Where the alert's group commands went beyond the batch, for :meth:`stop_areas`,
        noted once the send returned. When the alert was stopped meanwhile (a Cancel while the
        broker acknowledged the publish), :meth:`stop_areas` did not know of ``where``: it is
        stopped now, after its play command."""
        self._reached.setdefault(delivery.message.id, {})[where] = reached
        self._reached.move_to_end(delivery.message.id)
        while len(self._reached) > _ALERTS_KEPT:
            self._reached.popitem(last=False)
        if delivery.message.id in self._stopped:
            await self._stop(hub, delivery, where, reached)

    async def _once(
        self, hub: SpeakerHub, cmd_id: str, where: str, data: bytes, boxes: list[str] | None
    ) -> dict[str, SpeakerError | None]:
        """Send ``cmd_id`` once to ``boxes`` (None: publish it to the area topic ``where``);
        later callers share that send. The error or None per box (per area topic)."""
        key = (cmd_id, where)
        sent = self._sent.get(key)
        if sent is None:
            sent = asyncio.get_running_loop().create_future()
            self._sent[key] = sent
            while len(self._sent) > _SENT_KEPT:
                self._sent.popitem(last=False)
            try:
                outcome = await self._send(hub, where, data, boxes)
            except BaseException:
                # Cancelled (a send past the dispatcher's deadline) or a fault: whoever shares
                # this send gets an error, and the next attempt sends afresh.
                self._sent.pop(key, None)
                error = SpeakerTimeoutError(f"sending {cmd_id} was interrupted")
                sent.set_result(dict.fromkeys(boxes if boxes is not None else [where], error))
                raise
            if boxes is None and outcome[where] is not None:
                self._sent.pop(key, None)
            sent.set_result(outcome)
        return await asyncio.shield(sent)

    @staticmethod
    async def _send(
        hub: SpeakerHub, where: str, data: bytes, boxes: list[str] | None
    ) -> dict[str, SpeakerError | None]:
        """One send of a group command: the error or None per box (per area topic)."""
        if boxes is None:
            try:
                await hub.publish_area(where, data)
            except SpeakerError as exc:
                return {where: exc}
            return {where: None}
        return dict(zip(boxes, await hub.send_same(boxes, data), strict=True))

    async def stop_areas(self, hub: SpeakerHub, delivery: OutgoingDelivery) -> None:
        """Stop ``delivery``'s alert, once, wherever its group commands went beyond their
        batches (area topics, the TCP boxes of a group): boxes reached there whose own
        deliveries were still queued when the alert was cancelled get no ``stop`` of their
        own. A batch of the alert claimed before sends no play command."""
        self._stopped[delivery.message.id] = None
        while len(self._stopped) > _ALERTS_KEPT:
            self._stopped.popitem(last=False)
        for where, reached in self._reached.pop(delivery.message.id, {}).items():
            await self._stop(hub, delivery, where, reached)

    async def _stop(
        self, hub: SpeakerHub, delivery: OutgoingDelivery, where: str, reached: Reached
    ) -> None:
        """Send the group ``stop`` of ``delivery``'s alert where its group command went."""
        signer, key, boxes = reached
        cmd_id = group_command_id("stop", self._channel, delivery, signer)
        data = encode_command(
            replace(commands.stop(delivery), cmd_id=cmd_id), area_target(signer), key
        )
        try:
            if boxes is None:
                await hub.publish_area(where, data)
            else:
                await hub.send_same(boxes, data)
        except SpeakerError as exc:
            log.warning("channel %s: cannot stop %s: %s", self._channel, where, exc)

    def _error(self, box_id: str, error: SpeakerError) -> ChannelError:
        """The core's error for a driver error."""
        if isinstance(error, BoxOfflineError):
            return DeviceUnavailableError(
                f"box {box_id} is offline", retry_after=self._offline_retry()
            )
        if isinstance(error, SpeakerTimeoutError):
            return DeviceTimeoutError(f"box {box_id} did not answer: {error}")
        if isinstance(error, UnknownBoxError):
            return TargetRejectedError(f"box {box_id} is not registered: {error}")
        return DeviceUnavailableError(f"box {box_id}: {error}")
