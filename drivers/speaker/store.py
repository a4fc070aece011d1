"""What a box keeps on disk: stored clips, downloaded audio and the journal of commands.

The clip store holds pre-provisioned clips (``<clips_dir>/<clip_id>``) used by ``play_clip`` and
as the fallback when a download fails. Downloads land in a content-addressed cache named by
their SHA-256 and are only kept when the hash matches, or for sealed audio when its seal does
(docs/protocols/speaker.md, section 5); a download that fails in a way that may pass is tried
again first (:mod:`drivers.speaker.download_retry`). Sealed audio a command retains under an
``audio_topic`` is first awaited from an :class:`AudioTopicSource` (a box on MQTT:
:mod:`drivers.speaker.topic_audio`) for at most ``TOPIC_WAIT_S``, then downloaded as usual
within what is left of the download timeout (section 5.1). The cache keeps at most
``CACHE_BYTES``: past that, the files stored longest ago go, but none stored within
``CACHE_RECENT_S`` (it may be about to play), so a box that runs for years does not fill its
storage.
The journal remembers every command until it expires, so a duplicate or a restart never plays
an alert twice; it is rewritten atomically (temp file, fsync, rename) off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp
from multidict import CIMultiDictProxy

from drivers.retry_after import retry_after_s
from drivers.speaker.atomic import write_atomic
from drivers.speaker.codec import CLIP_PATTERN, format_time, parse_time
from drivers.speaker.download_retry import RETRY_STATUSES, with_retries
from drivers.speaker.errors import (
    BoxStorageError,
    DownloadInterruptedError,
    MediaDownloadError,
    MediaIntegrityError,
    SpeakerConfigError,
    SpeakerProtocolError,
)
from drivers.speaker.messages import AckStage, ack_wanted
from drivers.speaker.seal import TARGET_HEADER
from drivers.speaker.sealed_audio import CommandTarget, SealedAudio, check_sealed_answer

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ClipStore:
    """Pre-provisioned clips, each a file named by its clip id."""

    def __init__(self, clips_dir: Path) -> None:
        self._dir = clips_dir
        self._hashes: dict[str, tuple[float, int, str]] = {}

    async def verified_clip(self, clip_id: str, sha256: str | None) -> Path:
        """The path of ``clip_id``; raises MediaIntegrityError if missing or hash differs."""
        if not CLIP_PATTERN.fullmatch(clip_id):
            raise MediaIntegrityError(f"invalid clip id {clip_id!r}")
        path = self._dir / clip_id
        try:
            stat = await asyncio.to_thread(path.stat)
        except OSError as exc:
            raise MediaIntegrityError(f"clip {clip_id!r} is not stored on this box") from exc
        if sha256 is None:
            return path
        cached = self._hashes.get(clip_id)
        if cached is None or cached[:2] != (stat.st_mtime, stat.st_size):
            actual = await asyncio.to_thread(_sha256_file, path)
            cached = (stat.st_mtime, stat.st_size, actual)
            self._hashes[clip_id] = cached
        if cached[2] != sha256:
            raise MediaIntegrityError(f"clip {clip_id!r} does not match SHA-256 {sha256}")
        return path


class AudioTopicSource(Protocol):
    """Where a box takes the sealed audio a command retains under its ``audio_topic``
    (docs/protocols/speaker.md, section 5.1): a box's MQTT session
    (:class:`drivers.speaker.topic_audio.TopicAudio`)."""

    async def take(
        self, audio_topic: str, url: str, to: CommandTarget, within_s: float, max_bytes: int
    ) -> tuple[SealedAudio, bytes] | None:
        """The verified audio retained under ``audio_topic`` for the command to ``to`` naming
        ``url``, and what its seal note says, within ``within_s`` seconds and no larger than
        ``max_bytes``; None when it is not to be had so (the box then asks the URL)."""
        ...


MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
"""The largest audio a box takes, downloaded or retained."""
DOWNLOAD_TIMEOUT_S = 30.0
"""How long a box's fetch of one audio may take, tries again included."""
TOPIC_WAIT_S = 20.0
"""How much of the download timeout a box waits for retained audio before it asks the URL."""
CACHE_BYTES = 200 * 1024 * 1024
"""Downloaded audio a box keeps, at most (about 1,000 warnings of 35 s)."""
CACHE_RECENT_S = 3600.0
"""A file stored this recently is kept whatever the cache holds."""


class MediaFetcher:
    """Downloads audio over HTTP(S) into a content-addressed cache, checking its SHA-256, or
    its seal for a command that names none (``drivers.speaker.sealed_audio``), or takes the
    sealed audio retained under a command's ``audio_topic`` (``topic_wait_s`` at most).

    Concurrent fetches of the same hash, or of the same sealed URL for the same target, share
    one download (and one wait for retained audio), so one fetcher can serve many simulated
    boxes.
    """

    def __init__(
        self,
        cache_dir: Path,
        timeout_s: float = DOWNLOAD_TIMEOUT_S,
        max_bytes: int = MAX_DOWNLOAD_BYTES,
        cache_bytes: int = CACHE_BYTES,
        topic_wait_s: float = TOPIC_WAIT_S,
    ) -> None:
        self._dir = cache_dir
        self._cache_bytes = cache_bytes
        self._within = timeout_s
        self._topic_wait = min(topic_wait_s, timeout_s)
        self._max_bytes = max_bytes
        self._session: aiohttp.ClientSession | None = None
        self._inflight: dict[str, asyncio.Task[Path]] = {}
        self._stored: set[str] = set()
        self._sealed_inflight: dict[SealedKey, asyncio.Task[tuple[Path, int | None]]] = {}
        self._sealed: dict[SealedKey, SealedAudio] = {}

    async def aclose(self) -> None:
        """Stop downloads in progress and close the HTTP session."""
        tasks: list[asyncio.Task[Any]] = [
            *self._inflight.values(),
            *self._sealed_inflight.values(),
        ]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str, sha256: str) -> Path:
        """The cached file for ``sha256``, downloading ``url`` when it is not cached yet.

        Raises MediaDownloadError on network or HTTP errors and MediaIntegrityError when the
        content does not match ``sha256``.
        """
        path = self._dir / sha256
        if sha256 in self._stored:
            return path
        return await _shared(self._inflight, sha256, lambda: self._fetch_into_cache(url, sha256))

    async def fetch_sealed(
        self,
        url: str,
        to: CommandTarget,
        audio_topic: str | None = None,
        topics: AudioTopicSource | None = None,
    ) -> tuple[Path, int | None]:
        """The cached file of the sealed audio at ``url`` for the command target ``to``, and
        where its speech starts (None: the answer gave no speech start).

        With an ``audio_topic`` and ``topics`` to take it from, first waits for the audio
        retained there (verified by its seal note) for at most ``topic_wait_s``. Else, or
        when it does not come, asks the URL with ``to``'s target within what is left of the
        download timeout and accepts the answer only when its SHA-256 and seal match
        (``check_sealed_answer``): else MediaIntegrityError; MediaDownloadError on network or
        HTTP errors. Audio once verified for ``url`` and ``to`` is not fetched again.
        """
        key: SealedKey = (url, to.target, to.key)
        known = self._sealed.get(key)
        if known is not None:
            return self._dir / known.sha256, known.speech_start_ms
        retained = None if audio_topic is None or topics is None else (topics, audio_topic)
        return await _shared(
            self._sealed_inflight, key, lambda: self._fetch_sealed(url, to, retained)
        )

    async def _fetch_into_cache(self, url: str, sha256: str) -> Path:
        path = self._dir / sha256
        if not await asyncio.to_thread(path.is_file):
            _, body, digest = await with_retries(partial(self._get, url, {}), url, self._within)
            if digest != sha256:
                raise MediaIntegrityError(f"{url} does not match SHA-256 {sha256}")
            await self._store(url, path, body)
        self._stored.add(sha256)
        return path

    async def _fetch_sealed(
        self, url: str, to: CommandTarget, retained: tuple[AudioTopicSource, str] | None
    ) -> tuple[Path, int | None]:
        deadline = time.monotonic() + self._within
        if retained is not None:
            topics, audio_topic = retained
            taken = await topics.take(audio_topic, url, to, self._topic_wait, self._max_bytes)
            if taken is not None:
                return await self._keep_sealed(url, to, *taken)
        asked = {TARGET_HEADER: to.target}
        headers, body, digest = await with_retries(
            partial(self._get, url, asked), url, deadline - time.monotonic()
        )
        return await self._keep_sealed(url, to, check_sealed_answer(url, to, headers, digest), body)

    async def _keep_sealed(
        self, url: str, to: CommandTarget, sealed: SealedAudio, body: bytes
    ) -> tuple[Path, int | None]:
        """Cache verified sealed audio and remember it for ``url`` and ``to``."""
        path = self._dir / sealed.sha256
        if sealed.sha256 not in self._stored:
            await self._store(url, path, body)
            self._stored.add(sealed.sha256)
        self._sealed[url, to.target, to.key] = sealed
        return path, sealed.speech_start_ms

    async def _get(
        self, url: str, headers: dict[str, str], within_s: float
    ) -> tuple[CIMultiDictProxy[str], bytes, str]:
        """GET ``url`` (HTTP 200 only, at most ``max_bytes``) within ``within_s`` seconds: the
        answer's headers, its body and the body's SHA-256."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        digest = hashlib.sha256()
        chunks: list[bytes] = []
        size = 0
        try:
            # Not rounded up to a whole second, as aiohttp does from 5 s unless told.
            timeout = aiohttp.ClientTimeout(total=max(within_s, 0.001), ceil_threshold=math.inf)
            async with self._session.get(url, headers=headers, timeout=timeout) as response:
                if response.status in RETRY_STATUSES:
                    wait = retry_after_s(response.headers.get("Retry-After"))
                    message = f"GET {url} answered HTTP {response.status}"
                    raise DownloadInterruptedError(message, wait)
                if response.status != 200:
                    raise MediaDownloadError(f"GET {url} answered HTTP {response.status}")
                async for chunk in response.content.iter_chunked(CHUNK):
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise MediaDownloadError(f"{url} is larger than {self._max_bytes} bytes")
                    digest.update(chunk)
                    chunks.append(chunk)
        except TimeoutError as exc:  # the whole download timeout spent: not tried again
            raise MediaDownloadError(f"GET {url} failed: {exc!r}") from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise DownloadInterruptedError(f"GET {url} failed: {exc!r}") from exc
        except aiohttp.ClientError as exc:
            raise MediaDownloadError(f"GET {url} failed: {exc!r}") from exc
        return response.headers, b"".join(chunks), digest.hexdigest()

    async def _store(self, url: str, path: Path, body: bytes) -> None:
        try:
            await asyncio.to_thread(write_atomic, path, body)
        except OSError as exc:
            raise MediaDownloadError(f"cannot store {url} in {self._dir}: {exc}") from exc
        try:
            gone = await asyncio.to_thread(_trim, self._dir, self._cache_bytes, CACHE_RECENT_S)
        except OSError as exc:
            log.warning("cannot trim the audio cache %s: %s", self._dir, exc)
            return
        self._stored -= gone
        for key in [k for k, sealed in self._sealed.items() if sealed.sha256 in gone]:
            del self._sealed[key]


def _trim(directory: Path, limit: int, recent_s: float) -> set[str]:
    """Delete the files of ``directory`` stored longest ago until it holds at most ``limit``
    bytes, but none stored within ``recent_s``; the names deleted."""
    files = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_file() and not entry.name.endswith(".tmp"):
                stat = entry.stat()
                files.append((stat.st_mtime, stat.st_size, entry.name))
    total = sum(size for _, size, _ in files)
    cutoff = time.time() - recent_s
    gone: set[str] = set()
    for mtime, size, name in sorted(files):
        if total <= limit or mtime > cutoff:
            break
        with contextlib.suppress(FileNotFoundError):
            os.unlink(directory / name)
        total -= size
        gone.add(name)
    return gone


SealedKey = tuple[str, str, bytes]
"""A sealed download: its URL, the command's target and the key that verified the command."""


_Key = TypeVar("_Key")
_Fetched = TypeVar("_Fetched")


def _shared(
    inflight: dict[_Key, asyncio.Task[_Fetched]],
    key: _Key,
    start: Callable[[], Coroutine[Any, Any, _Fetched]],
) -> asyncio.Future[_Fetched]:
    """The download of ``key``, started by ``start`` unless one is in flight. It runs in its
    own task, so a caller that is cancelled (a preempted playback) does not cancel it for the
    others waiting on it."""
    task = inflight.get(key)
    if task is None:
        task = asyncio.get_running_loop().create_task(start())
        inflight[key] = task
        task.add_done_callback(partial(_forget, inflight, key))
    return asyncio.shield(task)


def _forget(inflight: dict[Any, Any], key: object, task: asyncio.Task[Any]) -> None:
    """Drop a finished download; its error has been (or will never be) seen by a waiter."""
    if inflight.get(key) is task:
        del inflight[key]
    if not task.cancelled():
        task.exception()


Said = tuple[AckStage, str | None, str | None]
"""An ack a box sent: its stage, reason and source."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """The last known state of one command on this box: its stage, the stages its command
    asked to hear (``acks``, None: every one) and the latest ack sent for it (``said``, None:
    none yet), which a reconnection repeats."""

    cmd_id: str
    alert_id: str
    kind: str
    stage: AckStage
    expires_at: datetime
    wire: str
    reason: str | None = None
    source: str | None = None
    acks: tuple[AckStage, ...] | None = None
    said: Said | None = None

    def advanced(
        self, stage: AckStage, reason: str | None = None, source: str | None = None
    ) -> JournalEntry:
        """A copy at a later stage; ``said`` follows when the command asked for the stage."""
        source = source or self.source
        said = (stage, reason, source) if ack_wanted(self.acks, stage, reason) else self.said
        return replace(self, stage=stage, reason=reason, source=source, said=said)


class PlayJournal:
    """Commands seen by the box, kept until they expire; in memory, or persisted to ``path``."""

    def __init__(self, path: Path | None = None, retention: timedelta = timedelta(hours=1)) -> None:
        self._path = path
        self._retention = retention
        self._entries: dict[str, JournalEntry] = {}
        self._lock = asyncio.Lock()
        self.volume: int | None = None

    async def load(self) -> None:
        """Read the journal file if there is one; raises SpeakerConfigError if it is corrupt."""
        if self._path is None or not await asyncio.to_thread(self._path.exists):
            return
        try:
            raw = json.loads(await asyncio.to_thread(self._path.read_text, "utf-8"))
            self.volume = raw.get("volume")
            for item in raw["entries"]:
                item["stage"] = AckStage(item["stage"])
                item["expires_at"] = parse_time(item["expires_at"])
                if item.get("acks") is not None:
                    item["acks"] = tuple(map(AckStage, item["acks"]))
                if "said" not in item:  # written before commands named their acks
                    item["said"] = [item["stage"], item.get("reason"), item.get("source")]
                if item["said"] is not None:
                    stage, reason, source = item["said"]
                    item["said"] = (AckStage(stage), reason, source)
                entry = JournalEntry(**item)
                self._entries[entry.cmd_id] = entry
        except (OSError, ValueError, KeyError, TypeError, SpeakerProtocolError) as exc:
            raise SpeakerConfigError(f"journal {self._path} is unreadable: {exc}") from exc

    def get(self, cmd_id: str) -> JournalEntry | None:
        """The entry of ``cmd_id``, if the command was seen."""
        return self._entries.get(cmd_id)

    def entries(self) -> list[JournalEntry]:
        """Every remembered command, oldest first."""
        return list(self._entries.values())

    async def record(self, entry: JournalEntry, now: datetime) -> None:
        """Store ``entry``, drop long-expired ones and persist."""
        self._entries[entry.cmd_id] = entry
        horizon = now - self._retention
        for stale in [e.cmd_id for e in self._entries.values() if e.expires_at < horizon]:
            del self._entries[stale]
        await self.save()

    async def save(self) -> None:
        """Persist the journal (no-op in memory)."""
        if self._path is None:
            return
        snapshot = {
            "volume": self.volume,
            "entries": [
                asdict(e) | {"stage": e.stage.value, "expires_at": format_time(e.expires_at)}
                for e in self._entries.values()
            ],
        }
        data = json.dumps(snapshot, ensure_ascii=False).encode()
        async with self._lock:
            write = asyncio.ensure_future(asyncio.to_thread(write_atomic, self._path, data))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                # The thread writes on regardless: hold the lock until it is done, so an older
                # snapshot never lands after a newer one.
                with contextlib.suppress(OSError):
                    await write
                raise
            except OSError as exc:
                raise BoxStorageError(f"cannot write journal {self._path}: {exc}") from exc
