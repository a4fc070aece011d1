"""A box agent run in a test's own loop, with its journal on disk and a recording player: the
rig of the agent tests (``box`` and ``media`` fixtures in conftest)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drivers.speaker.agent import BoxAgent, BoxBehaviourConfig, BoxIdentity
from drivers.speaker.codec import decode_box_message, encode_command
from drivers.speaker.messages import AckStage, BoxAck, BoxStatus, Command
from drivers.speaker.player import PlaybackLog, Player, RecordingPlayer
from drivers.speaker.store import ClipStore, MediaFetcher, PlayJournal
from drivers.speaker.testing import MediaServer

KEY = b"box-key-0123456789abcdef"
AREA_KEY = b"area-key-0123456789abcdef"
AUDIO = b"audio bytes" * 50
CLIP = b"stored clip"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Box:
    """An agent running in the test's loop; ``acks`` holds what it sent, decoded. It plays
    through a recording player, or through ``player`` when one is given."""

    def __init__(
        self,
        tmp_path: Path,
        media: MediaServer,
        play_seconds: float = 0.0,
        player: Player | None = None,
    ) -> None:
        (tmp_path / "clips").mkdir(exist_ok=True)
        (tmp_path / "clips" / "generic").write_bytes(CLIP)
        self.log = PlaybackLog()
        self.player = RecordingPlayer(self.log, play_seconds)
        self._box_player = player or self.player
        self.media = media
        self.fetcher = MediaFetcher(tmp_path / "cache")
        self.tmp_path = tmp_path
        self.messages: list[BoxAck | BoxStatus] = []
        self._changed = asyncio.Event()

    def start(self) -> None:
        identity = BoxIdentity(box_id="b1", key=KEY, area_keys={"150902": AREA_KEY})
        self.agent = BoxAgent(
            identity,
            self._box_player,
            ClipStore(self.tmp_path / "clips"),
            self.fetcher,
            PlayJournal(self.tmp_path / "journal.json"),
            BoxBehaviourConfig(fallback_clip="generic", heartbeat_s=3600),
        )
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self.agent.run()), loop.create_task(self._drain())]

    async def _drain(self) -> None:
        while True:
            data = await self.agent.next_outgoing()
            message = decode_box_message(data, lambda b: KEY if b == "b1" else None)
            assert isinstance(message, BoxAck | BoxStatus)
            self.messages.append(message)
            self._changed.set()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def acks(self, cmd_id: str) -> list[tuple[AckStage, str | None]]:
        return [
            (m.stage, m.reason)
            for m in self.messages
            if isinstance(m, BoxAck) and m.cmd_id == cmd_id
        ]

    def said(self, cmd_id: str) -> list[tuple[AckStage, str | None, str | None]]:
        """The stage, reason and source of each ack sent for ``cmd_id``."""
        return [
            (m.stage, m.reason, m.source)
            for m in self.messages
            if isinstance(m, BoxAck) and m.cmd_id == cmd_id
        ]

    async def wait_ack(self, cmd_id: str, stage: AckStage, within_s: float = 5.0) -> None:
        async with asyncio.timeout(within_s):
            while stage not in [s for s, _ in self.acks(cmd_id)]:
                self._changed.clear()
                await self._changed.wait()

    async def wait_settled(self, cmd_id: str, within_s: float = 5.0) -> None:
        """Wait for the command's last word: ``finished`` or ``failed``."""
        final = (AckStage.FINISHED, AckStage.FAILED)
        async with asyncio.timeout(within_s):
            while not any(s in final for s, _ in self.acks(cmd_id)):
                self._changed.clear()
                await self._changed.wait()

    async def send(self, command: Command, key: bytes = KEY, target: str = "box:b1") -> None:
        await self.agent.handle_command(encode_command(command, target, key))


def header(cmd_id: str, alert_id: str = "alert", expires_in_s: float = 60) -> dict:
    now = datetime.now(UTC)
    return {
        "cmd_id": cmd_id,
        "alert_id": alert_id,
        "issued_at": now,
        "expires_at": now + timedelta(seconds=expires_in_s),
    }
