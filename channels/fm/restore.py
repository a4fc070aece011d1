"""Never TA left up: a background restorer per encoder and an on-air journal on disk.

:class:`EncoderRestorer` puts an encoder's normal state back when an alert sequence could
not (the link stayed down through every reconnection attempt): it retries every
``restore_retry_seconds`` until the encoder acknowledges, using the client's
``pending_restore`` (the driver applies it first on every reconnection too).

:class:`OnAirJournal` keeps the same promise across a restart. Before TA is raised on an
encoder the channel writes one small JSON file for it under ``<data dir>/fm-<channel>/on-air/``:
the transmitter, the encoder URL, the station's normal state and the alert. The file is
removed once the encoder acknowledged the restore. A file found at start-up means the process
stopped (crash, power cut, shutdown with the encoder unreachable) while an alert might still
be up; the channel then restores that encoder in the background until it answers. Files are
written to a temporary name and renamed, so a crash never leaves half a file; an unreadable
file is reported and set aside, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from drivers.rds import EncoderState, RdsEncoderClient, RdsError

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """An encoder that may have an alert up, and what to put back on it."""

    transmitter: str
    url: str
    normal: EncoderState
    alert: str
    raised_at: float


class OnAirJournal:
    """The on-air files of one channel instance; every method runs its file work in a
    thread so the event loop never waits on the disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode()).hexdigest()[:20]
        return self.directory / f"{digest}.json"

    async def record(self, transmitter: str, url: str, normal: EncoderState, alert: str) -> None:
        """Note that an alert is about to go up on ``url``."""
        entry = JournalEntry(transmitter, url, normal, alert, time.time())
        await asyncio.to_thread(self._write, entry)

    def _write(self, entry: JournalEntry) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(entry.url)
        doc = asdict(entry) | {"normal": asdict(entry.normal)}
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, path)

    async def clear(self, url: str) -> None:
        """Note that ``url`` is back to its normal state."""
        await asyncio.to_thread(self._path(url).unlink, missing_ok=True)

    async def entries(self) -> list[JournalEntry]:
        """Every encoder left with an alert possibly up, oldest first."""
        return await asyncio.to_thread(self._read_all)

    def _read_all(self) -> list[JournalEntry]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                found.append(
                    JournalEntry(
                        transmitter=str(doc["transmitter"]),
                        url=str(doc["url"]),
                        normal=EncoderState(**doc["normal"]).validate(),
                        alert=str(doc["alert"]),
                        raised_at=float(doc["raised_at"]),
                    )
                )
            except (OSError, ValueError, KeyError, TypeError) as error:
                _log.error("FM on-air file %s is unreadable (%s); set aside", path, error)
                path.rename(path.with_suffix(".bad"))
        return sorted(found, key=lambda entry: entry.raised_at)


def _raise_if_cancelling() -> None:
    """Honour a cancellation that ``asyncio.wait_for`` (Python 3.11) lost because the
    awaited connection failed at the same moment."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class EncoderRestorer:
    """Restores one encoder in the background and keeps its journal entry up to date.

    ``url`` is the encoder URL as configured, query included: the journal keeps it so that a
    restart reaches the encoder with the same dialect and addresses."""

    def __init__(
        self,
        name: str,
        url: str,
        client: RdsEncoderClient,
        retry_s: float,
        journal: OnAirJournal | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.client = client
        self.retry_s = retry_s
        self.journal = journal
        self.last_error = ""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Restore ``client.pending_restore`` in the background, if not already doing so."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name=f"fm-restore {self.name}")

    async def stop(self) -> None:
        """Stop restoring (an alert is about to start, or the channel stops)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def recover(self, normal: EncoderState) -> None:
        """Restore ``normal``: an earlier run left an alert possibly up."""
        self.client.expect_restore(normal)
        self.start()

    async def _loop(self) -> None:
        while (state := self.client.pending_restore) is not None:
            try:
                if not self.client.connected:
                    await self.client.connect()  # applies the pending restore first
                if self.client.pending_restore is not None:
                    await self.client.restore(state)
            except RdsError as error:
                self.last_error = f"restore pending: {error}"
                _log.warning("transmitter %s: restore still pending: %s", self.name, error)
                await self.client.close()
                _raise_if_cancelling()
                await asyncio.sleep(self.retry_s)
        self.last_error = ""
        _log.warning("transmitter %s: normal state restored after reconnecting", self.name)
        await self.forget()

    async def remember(self, normal: EncoderState, alert: str) -> None:
        """Journal that ``alert`` is about to go up; a failing disk never stops the alert."""
        if self.journal is None:
            return
        try:
            await self.journal.record(self.name, self.url, normal, alert)
        except OSError as error:
            _log.error("transmitter %s: cannot write the on-air journal: %s", self.name, error)

    async def forget(self) -> None:
        """Journal that the encoder is back to normal."""
        if self.journal is None:
            return
        try:
            await self.journal.clear(self.url)
        except OSError as error:
            _log.error("transmitter %s: cannot clear the on-air journal: %s", self.name, error)
