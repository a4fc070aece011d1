"""Play the FM render into a transmitter's audio input with a configurable command.

The command is a list of arguments run without a shell (``aplay -q -D plughw:1,0 {file}``,
``ffmpeg -re -i {file} -f alsa default``, a streaming client); ``{file}`` is replaced by the
WAV file, ``{transmitter}`` by the target id and ``{delivery}`` by the delivery id. It runs as
a subprocess, so the event loop never waits on audio. Playback is done when the command
exits 0; a non-zero exit, a command that runs far past the audio's length, or one that
cannot be started is a :class:`~broadcaster.errors.DeviceUnavailableError` naming the
command and its last words on stderr. Cancelling :meth:`AudioPlayer.play` kills the command
at once, which is how a Cancel stops the audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from broadcaster.errors import ChannelError, DeviceTimeoutError, DeviceUnavailableError

_log = logging.getLogger(__name__)
_STDERR_TAIL = 300


class AudioPlayer:
    """Runs the player command once per file; see the module docstring."""

    def __init__(self, command: Sequence[str], *, timeout_extra_s: float = 30.0) -> None:
        self.command = tuple(command)
        self.timeout_extra_s = timeout_extra_s

    def check(self) -> None:
        """Raise ChannelError when the player program cannot be found."""
        program = self.command[0]
        if shutil.which(program) is None:
            raise ChannelError(f"FM player command {program!r} is not installed or not on PATH")

    def arguments(self, path: Path, *, transmitter: str, delivery: int) -> list[str]:
        """The command line for ``path``, placeholders filled in."""
        values = {"{file}": str(path), "{transmitter}": transmitter, "{delivery}": str(delivery)}
        out = []
        for part in self.command:
            for placeholder, value in values.items():
                part = part.replace(placeholder, value)
            out.append(part)
        return out

    async def play(
        self, path: Path, duration_s: float, *, transmitter: str = "", delivery: int = 0
    ) -> None:
        """Play ``path`` to the end; kill the command if the caller is cancelled."""
        argv = self.arguments(path, transmitter=transmitter, delivery=delivery)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            raise DeviceUnavailableError(f"cannot start FM player {argv[0]!r}: {error}") from error
        try:
            async with asyncio.timeout(duration_s + self.timeout_extra_s):
                _, stderr = await process.communicate()
        except TimeoutError as error:
            await _kill(process)
            raise DeviceTimeoutError(
                f"FM player {argv[0]!r} still running {self.timeout_extra_s:g} s after the "
                f"end of {duration_s:.1f} s of audio"
            ) from error
        except BaseException:
            await _kill(process)
            raise
        if process.returncode != 0:
            tail = stderr.decode(errors="replace").strip()[-_STDERR_TAIL:]
            raise DeviceUnavailableError(
                f"FM player {argv[0]!r} exited with {process.returncode}: {tail or 'no message'}"
            )


async def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill ``process`` and reap it, even when the caller is being cancelled again."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    reaper = asyncio.ensure_future(process.wait())
    try:
        await asyncio.shield(reaper)
    except asyncio.CancelledError:
        await reaper
        raise
    _log.info("FM player stopped (exit %s)", process.returncode)
