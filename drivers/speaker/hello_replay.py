"""Which TCP hellos a box may still open a connection with, also across restarts of the hub
(docs/protocols/speaker.md, section 4.1).

A newer connection from a box replaces the older one, so a hello captured on the wire and
replayed within the clock skew window would take the box's connection over, and the commands
for its village would go to the replayer. ``HelloReplayGuard`` refuses a hello whose nonce it
accepted from that box within the window, or whose ``at`` is earlier than that of the box's
last accepted hello.

Given a state file, it keeps that refusal across a restart. The file holds, per box, the ``at``
of its last accepted hello, and a ``floor``: every hello ever accepted whose ``at`` is not
before the floor has ``at`` at most its box's entry. After loading the file the guard also
refuses a hello dated before the floor, and one not later than its box's entry. Every hello
accepted before the restart is one of those, whatever the boxes' clocks; a box reconnecting
after the restart passes, since its new hello carries its current time, later than that of
any hello it sent before. At each write the entries dated more than the window ago are left
out and the floor raised to match (such hellos fail the clock check anyway), so the file holds
at most one entry per box that said hello within the window.

Writes are batched: one write (temporary file, fsync, rename, fsync of the directory) in a
thread, at most every ``write_interval_s``, takes every hello admitted since the previous
one, so ten thousand boxes reconnecting at once cost a few writes, none on the event loop.
Batching costs no safety, because a hello counts as accepted only once a write that holds it
is on disk: ``admit`` records it in memory at once (a replay arriving meanwhile is refused),
and the TCP link gives the box's connection its place only when ``written()`` is done, about a
second later at most. A hello admitted but not yet written when the server dies never held a
connection: after the restart it is no different from a hello delayed on the wire, and once
accepted it is refused again like any other.

A missing, unreadable, oversized or malformed file is logged, and the guard starts with no
entries and the floor at the moment it loaded: hellos dated before it are refused (a box whose
clock lags the server's is refused until its clock passes it, and keeps reconnecting
meanwhile). That covers every earlier hello except one from a box whose clock ran ahead of the
server's by more than the restart took. A write that fails is logged and tried again at the
next interval; the hellos waiting for it are accepted all the same, since refusing every box
while the disk is full would silence every village: until a write succeeds, only a restart
loses what was not written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drivers.speaker.atomic import write_atomic
from drivers.speaker.codec import ID_PATTERN, format_time
from drivers.speaker.errors import SpeakerProtocolError
from drivers.speaker.messages import BoxHello

log = logging.getLogger(__name__)

STATE_VERSION = 1
MAX_STATE_BYTES = 64 * 1024 * 1024
"""A state file larger than this is refused as malformed, unread."""
MAX_STATE_BOXES = 1 << 20
"""A state file with more entries than this is refused as malformed."""
_BEGINNING = datetime.min.replace(tzinfo=UTC)


class HelloReplayGuard:
    """The hellos each box connected with lately, so that a captured one cannot be replayed
    within the clock skew window to take the box's connection over; with ``state_file``,
    also after a restart (see the module docstring).

    Per box it keeps the time of the last accepted hello and the nonces of those still inside
    ``window`` (older ones fail the time check anyway), so it stays small.
    """

    def __init__(
        self, window: timedelta, state_file: Path | None = None, write_interval_s: float = 1.0
    ) -> None:
        self._window = window
        self._path = state_file
        self._interval = write_interval_s
        self._latest: dict[str, datetime] = {}
        self._nonces: dict[str, dict[str, datetime]] = {}
        self._floor = _BEGINNING
        self._restored: dict[str, datetime] = {}
        """Entries of the state file, for boxes with no hello accepted since it was loaded."""
        self._loaded = False
        self._dirty = False
        self._waiting: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._written_at = -self._interval
        self._failing = False

    def admit(self, hello: BoxHello, now: datetime) -> None:
        """Accept a verified, fresh ``hello`` once; raises SpeakerProtocolError when its
        nonce was used before or it is older than the box's last accepted hello. With a state
        file, the box's connection may take its place once ``written()`` is done."""
        box_id = hello.box_id
        if hello.at < self._floor:
            raise SpeakerProtocolError(
                f"box {box_id}: hello dated before {format_time(self._floor)}, the start of"
                " the hub's hello memory"
            )
        restored = self._restored.get(box_id)
        if restored is not None and hello.at <= restored:
            raise SpeakerProtocolError(
                f"box {box_id}: hello not later than its last accepted one before the restart"
            )
        latest = self._latest.get(box_id)
        if latest is not None and hello.at < latest:
            raise SpeakerProtocolError(f"box {box_id}: hello older than its last accepted one")
        horizon = now - self._window
        nonces = {n: at for n, at in self._nonces.get(box_id, {}).items() if at >= horizon}
        if hello.nonce in nonces:
            raise SpeakerProtocolError(f"box {box_id}: hello nonce used before")
        nonces[hello.nonce] = hello.at
        self._nonces[box_id] = nonces
        self._latest[box_id] = hello.at
        self._restored.pop(box_id, None)
        if self._path is not None:
            self._dirty = True
            if self._waiting is None:
                self._waiting = asyncio.get_running_loop().create_future()
            self._wake.set()

    def written(self) -> asyncio.Future[None] | None:
        """Done once every hello admitted so far is on disk (or its write failed, which is
        logged); None when none waits: no state file, or all are written."""
        return self._waiting

    async def open(self) -> None:
        """Load the state file, the first time, and start writing it; nothing without one."""
        if self._path is None or self._writer is not None:
            return
        if not self._loaded:
            await self._load(self._path)
        self._wake, self._closing = asyncio.Event(), asyncio.Event()
        if self._dirty:
            self._wake.set()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def close(self) -> None:
        """Write what is not written yet and stop writing; safe to call twice."""
        if self._writer is None:
            return
        self._closing.set()
        self._wake.set()
        await self._writer
        self._writer = None
        if self._dirty:
            await self._write()

    async def _load(self, path: Path) -> None:
        now = datetime.now(UTC)
        # In whole milliseconds, as hellos carry their time: one sent at this very moment passes.
        loaded_at = now.replace(microsecond=now.microsecond // 1000 * 1000)
        try:
            floor, latest = await asyncio.to_thread(_read_state, path, loaded_at, self._window)
        except FileNotFoundError:
            log.info(
                "no hello state at %s yet: TCP hellos dated before %s are refused",
                path,
                format_time(loaded_at),
            )
            floor, latest = loaded_at, {}
        except (OSError, ValueError) as exc:
            log.error(
                "the hello state at %s cannot be used (%s): starting without it; TCP hellos"
                " dated before %s are refused",
                path,
                exc,
                format_time(loaded_at),
            )
            floor, latest = loaded_at, {}
        self._floor = floor
        self._restored = dict(latest)
        self._latest.update(latest)
        self._loaded = True

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            pause = self._written_at + self._interval - loop.time()
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._closing.wait()
            if self._closing.is_set():
                return
            self._wake.clear()
            if self._dirty:
                await self._write()

    async def _write(self) -> None:
        assert self._path is not None
        batch, self._waiting = self._waiting, None
        self._dirty = False
        self._floor = max(self._floor, datetime.now(UTC) - self._window)
        latest = dict(self._latest)
        self._written_at = asyncio.get_running_loop().time()
        try:
            await asyncio.to_thread(_write_state, self._path, self._floor, latest)
        except OSError as exc:
            self._dirty = True
            self._wake.set()
            if not self._failing:
                log.error(
                    "cannot write the hello state at %s (%s): trying again every %.0f s;"
                    " until then a restart would forget the hellos accepted since",
                    self._path,
                    exc,
                    self._interval,
                )
            self._failing = True
        else:
            if self._failing:
                log.warning("the hello state at %s is written again", self._path)
            self._failing = False
        finally:
            if batch is not None and not batch.done():
                batch.set_result(None)


def _read_state(
    path: Path, now: datetime, window: timedelta
) -> tuple[datetime, dict[str, datetime]]:
    """The floor and entries of a state file; raises OSError, or ValueError saying what is
    wrong with it."""
    with path.open("rb") as file:
        data = file.read(MAX_STATE_BYTES + 1)
    if len(data) > MAX_STATE_BYTES:
        raise ValueError(f"larger than {MAX_STATE_BYTES} bytes")
    try:
        raw = json.loads(data)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc
    if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
        raise ValueError(f"not a version {STATE_VERSION} hello state")
    floor = _instant(raw.get("floor"), "floor")
    if floor > now:
        raise ValueError(f"floor {floor.isoformat()} is later than the clock")
    boxes = raw.get("boxes")
    if not isinstance(boxes, dict):
        raise ValueError("boxes: not an object")
    if len(boxes) > MAX_STATE_BOXES:
        raise ValueError(f"more than {MAX_STATE_BOXES} boxes")
    latest: dict[str, datetime] = {}
    for box_id, text in boxes.items():
        if not ID_PATTERN.fullmatch(box_id):
            raise ValueError(f"invalid box id {box_id[:140]!r}")
        at = _instant(text, f"box {box_id}")
        if at > now + window:
            raise ValueError(f"box {box_id}: {at.isoformat()} is later than a hello can be")
        latest[box_id] = at
    return floor, latest


def _instant(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{what}: not a time")
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{what}: {value[:64]!r} is not a time") from exc
    if at.tzinfo is None:
        raise ValueError(f"{what}: {value[:64]!r} has no UTC offset")
    return at.astimezone(UTC)


def _write_state(path: Path, floor: datetime, latest: dict[str, datetime]) -> None:
    """Replace the state file whole, durably: the new file and its name are on disk when this
    returns."""
    boxes = {box_id: at.isoformat() for box_id, at in latest.items() if at >= floor}
    state = {"version": STATE_VERSION, "floor": floor.isoformat(), "boxes": boxes}
    write_atomic(path, json.dumps(state, separators=(",", ":")).encode(), sync_directory=True)
