"""The box agent: verifies commands, plays audio by priority and reports every stage.

Follows docs/protocols/speaker.md sections 3 (command handling) and 5 (box behaviour). The agent
is transport-free: an uplink (TCP, MQTT or a serial line, see ``uplinks``) feeds it command
bytes through ``handle_command`` and sends what ``next_outgoing`` yields; an uplink that can
carry sealed audio retained on its transport (MQTT, section 4.3) offers it through
``use_audio_topics``. The same class runs in ``broadcaster-box`` on a real box and thousands
of times in the fleet simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from drivers.speaker.codec import (
    area_target,
    box_target,
    decode_command,
    encode_box_message,
    parse_object,
)
from drivers.speaker.errors import (
    SignatureError,
    SpeakerProtocolError,
)
from drivers.speaker.messages import (
    AckStage,
    BoxAck,
    BoxHello,
    BoxMessage,
    BoxState,
    BoxStatus,
    Command,
    PlayClip,
    PlayUrl,
    SetVolume,
    Stop,
)
from drivers.speaker.playback import PlaybackScheduler
from drivers.speaker.player import Player
from drivers.speaker.sealed_audio import CommandTarget
from drivers.speaker.stop_memory import StopMemory
from drivers.speaker.store import (
    AudioTopicSource,
    ClipStore,
    JournalEntry,
    MediaFetcher,
    PlayJournal,
)

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 1000
FIRMWARE = "broadcaster-box/0.1"


@dataclass(frozen=True, slots=True)
class BoxIdentity:
    """Who the box is and the keys it verifies commands with; keys never appear in repr."""

    box_id: str
    key: bytes = field(repr=False)
    area_keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    firmware: str = FIRMWARE


@dataclass(frozen=True, slots=True)
class BoxBehaviourConfig:
    """How the agent behaves: default volume, fallback clip, heartbeat and clock tolerance."""

    default_volume: int = 80
    fallback_clip: str | None = None
    heartbeat_s: float = 30.0
    max_clock_skew_s: float = 300.0


class BoxAgent:
    """One loudspeaker box: command verification, the play queue, acks and heartbeats."""

    def __init__(
        self,
        identity: BoxIdentity,
        player: Player,
        clips: ClipStore,
        fetcher: MediaFetcher,
        journal: PlayJournal,
        behaviour: BoxBehaviourConfig | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.identity = identity
        self._behaviour = behaviour or BoxBehaviourConfig()
        self._journal = journal
        self._stops = StopMemory()
        self._clock = clock
        self._volume = self._behaviour.default_volume
        self._playback = PlaybackScheduler(
            identity.box_id,
            player,
            clips,
            fetcher,
            self._finish,
            clock,
            lambda: self._volume,
            self._behaviour.fallback_clip,
        )
        self._outbox: deque[bytes] = deque(maxlen=OUTBOX_LIMIT)
        self._outbox_ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = time.monotonic()
        self._ready = asyncio.Event()

    @property
    def box_id(self) -> str:
        """The box's id."""
        return self.identity.box_id

    async def run(self) -> None:
        """Load the journal, resume interrupted playbacks, then play and send heartbeats
        until cancelled."""
        await self._journal.load()
        if self._journal.volume is not None:
            self._volume = self._journal.volume
        try:
            await self._resume_unfinished()
            self._ready.set()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._playback.run())
                group.create_task(self._heartbeat_loop())
        finally:
            await self._playback.close()  # also what resuming scheduled, if run never started
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(self._tasks)

    # -- outgoing messages, pulled by the uplink

    async def next_outgoing(self) -> bytes:
        """Wait for the next signed message to send to the server."""
        while not self._outbox:
            self._outbox_ready.clear()
            await self._outbox_ready.wait()
        return self._outbox.popleft()

    def take_outgoing(self) -> bytes | None:
        """The next signed message to send, or None when there is nothing."""
        return self._outbox.popleft() if self._outbox else None

    @property
    def outgoing_count(self) -> int:
        """Messages waiting to be sent."""
        return len(self._outbox)

    def use_audio_topics(self, source: AudioTopicSource) -> None:
        """Take the sealed audio that commands retain under an ``audio_topic`` from ``source``
        (the box's MQTT session); without one, the box asks every URL (section 5.1)."""
        self._playback.audio_topics = source

    def hello(self) -> bytes:
        """A signed greeting proving this box holds its key (first line on TCP)."""
        message = BoxHello(
            box_id=self.box_id,
            at=self._clock(),
            nonce=os.urandom(8).hex(),
            firmware=self.identity.firmware,
        )
        return encode_box_message(message, self.identity.key)

    def link_up(self) -> None:
        """Called by an uplink after (re)connecting: repeat the latest ack sent for every live
        command, and a heartbeat, in case messages were lost with the old connection."""
        now = self._clock()
        for entry in self._journal.entries():
            if entry.expires_at > now:
                self._emit_ack(entry)
        self._emit(self.status())

    def status(self) -> BoxStatus:
        """The heartbeat the box would send now."""
        current = self._playback.current
        return BoxStatus(
            box_id=self.box_id,
            at=self._clock(),
            state=BoxState.PLAYING if current else BoxState.IDLE,
            volume=self._volume,
            uptime_s=int(time.monotonic() - self._started),
            firmware=self.identity.firmware,
            playing_alert_id=current.alert_id if current else None,
            playing_cmd_id=current.cmd_id if current else None,
        )

    def _emit(self, message: BoxMessage) -> None:
        self._outbox.append(encode_box_message(message, self.identity.key))
        self._outbox_ready.set()

    def _emit_ack(self, entry: JournalEntry) -> None:
        """Send the latest ack the command asked for again (nothing when it asked for none of
        the stages reached so far)."""
        if entry.said is None:
            return
        stage, reason, source = entry.said
        self._emit(
            BoxAck(
                box_id=self.box_id,
                cmd_id=entry.cmd_id,
                alert_id=entry.alert_id,
                stage=stage,
                at=self._clock(),
                reason=reason,
                source=source,
            )
        )

    # -- incoming commands

    def submit_command(self, data: bytes) -> None:
        """Handle command bytes in the background (for links that must reply at once)."""
        self._spawn(self.handle_command(data))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _key_for_target(self, target: str) -> bytes | None:
        if target == box_target(self.box_id):
            return self.identity.key
        for code, key in self.identity.area_keys.items():
            if target == area_target(code):
                return key
        return None

    async def handle_command(self, data: bytes) -> None:
        """Verify one command and act on it. Bad input is logged and refused, never raised.

        Waits until ``run`` has loaded the journal, so nothing is judged without its history.
        """
        await self._ready.wait()
        try:
            command, to = self._decode(data)
        except SpeakerProtocolError as exc:
            self._refuse_unverified(data, exc)
            return
        prior = self._journal.get(command.cmd_id)
        if prior is not None:
            log.info("box %s: duplicate command %s ignored", self.box_id, command.cmd_id)
            self._emit_ack(prior)
            return
        now = self._clock()
        entry = JournalEntry(
            cmd_id=command.cmd_id,
            alert_id=command.alert_id,
            kind=command.kind,
            stage=AckStage.ACCEPTED,
            expires_at=command.expires_at,
            wire=data.decode(),
            acks=self._acks_of(command),
        )
        skew = timedelta(seconds=self._behaviour.max_clock_skew_s)
        if command.expires_at <= now:
            await self._finish(entry, AckStage.FAILED, reason="expired")
            return
        if command.issued_at > now + skew:
            await self._finish(entry, AckStage.FAILED, reason="not_yet_valid")
            return
        if isinstance(command, PlayUrl | PlayClip) and self._stops.stops(command, now):
            await self._finish(entry, AckStage.FAILED, reason="stopped")
            return
        await self._finish(entry, AckStage.ACCEPTED)
        await self._execute(command, entry, to)

    def _decode(self, data: bytes) -> tuple[Command, CommandTarget]:
        """Verify and decode a command; also returns its target and the key that verified it
        (what its sealed audio is fetched with)."""
        target, command = decode_command(data, self._key_for_target)
        key = self._key_for_target(target)
        if key is None:
            raise SignatureError(f"no key is known for {target}")
        return command, CommandTarget(target, key)

    def _acks_of(self, command: Command) -> tuple[AckStage, ...] | None:
        """The stages of ``command`` to acknowledge (``failed`` always is); None: every one."""
        return command.acks

    def _refuse_unverified(self, data: bytes, exc: SpeakerProtocolError) -> None:
        reason = "bad_signature" if isinstance(exc, SignatureError) else "malformed"
        log.warning("box %s: command refused (%s): %s", self.box_id, reason, exc)
        with contextlib.suppress(SpeakerProtocolError):
            obj = parse_object(data)
            cmd_id, alert_id = obj.get("cmd_id"), obj.get("alert_id")
            if isinstance(cmd_id, str) and isinstance(alert_id, str) and len(cmd_id) <= 128:
                refusal = BoxAck(
                    box_id=self.box_id,
                    cmd_id=cmd_id,
                    alert_id=alert_id[:256],
                    stage=AckStage.FAILED,
                    at=self._clock(),
                    reason=reason,
                )
                self._emit(refusal)

    async def _finish(
        self,
        entry: JournalEntry,
        stage: AckStage,
        reason: str | None = None,
        source: str | None = None,
    ) -> JournalEntry:
        updated = entry.advanced(stage, reason, source)
        await self._journal.record(updated, self._clock())
        if updated.said is not entry.said:
            self._emit_ack(updated)
        return updated

    async def _execute(self, command: Command, entry: JournalEntry, to: CommandTarget) -> None:
        if isinstance(command, Stop):
            self._stops.remember(command)
            self._playback.stop_alert(command.alert_id, "stopped")
            await self._finish(entry, AckStage.FINISHED)
        elif isinstance(command, SetVolume):
            self._volume = command.volume
            self._journal.volume = command.volume
            await self._finish(entry, AckStage.FINISHED)
        elif self._stops.stops(command, self._clock()):
            # A stop carried out while this command was being journaled.
            await self._finish(entry, AckStage.FAILED, reason="stopped")
        else:
            self._playback.schedule(command, entry, to)

    async def _resume_unfinished(self) -> None:
        """Recall the stops carried out, then resume the play commands a restart cut off
        (section 3.4), failing those a stop cancels."""
        resumed: list[tuple[PlayUrl | PlayClip, JournalEntry, CommandTarget]] = []
        for entry in self._journal.entries():
            carried_out = entry.kind == Stop.kind and entry.stage is not AckStage.FAILED
            if not carried_out and entry.stage not in (AckStage.ACCEPTED, AckStage.STARTED):
                continue
            try:
                command, to = self._decode(entry.wire.encode())
            except SpeakerProtocolError as exc:
                log.warning("box %s: journal entry %s dropped: %s", self.box_id, entry.cmd_id, exc)
                continue
            if isinstance(command, Stop):
                self._stops.remember(command)
            elif isinstance(command, PlayUrl | PlayClip):
                resumed.append((command, entry, to))
        for command, entry, to in resumed:
            if self._stops.stops(command, self._clock()):
                await self._finish(entry, AckStage.FAILED, reason="stopped")
            else:
                log.info("box %s: resuming %s after restart", self.box_id, entry.cmd_id)
                self._playback.schedule(command, entry, to)

    async def _heartbeat_loop(self) -> None:
        # The first heartbeat goes out from link_up, when there is a link to carry it.
        while True:
            await asyncio.sleep(self._behaviour.heartbeat_s)
            self._emit(self.status())
