"""Streaming export: one ffmpeg encoder fed master-rate PCM on its standard input while the
message is still being made.

A ``StreamingEncoder`` starts the encoder for one format (the settings of ``audio.export``)
before the speech exists: the opening of a message (attention signal, pause) is encoded while
the engines synthesise, and each spoken part is encoded while the next is laid out. The first
audio is therefore available before the whole text is synthesised and normalised, and the
encoder's work overlaps the rest of the render instead of following it. ``first_audio_s``
says when the first second of the message was handed to the encoder, measured from the start.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from audio.assembly import AssembledAudio, ChannelProfile, ProgrammeStream
from audio.chain import SpeechResult
from audio.errors import AudioToolError
from audio.export import ENCODERS, ExportFormat
from audio.pcm import MASTER_RATE, Samples, ffmpeg_binary, to_pcm16

FIRST_AUDIO_SAMPLES = MASTER_RATE
"""How much of the message counts as its first audio: one second."""
CHUNK_SAMPLES = MASTER_RATE // 4
"""PCM goes to the encoder in quarter seconds, so the first second is not held up behind a
long part (the pipe blocks until the encoder has taken what it holds)."""


def _encoder_command(fmt: ExportFormat, target: Path) -> list[str]:
    settings = ENCODERS[fmt]
    command = [ffmpeg_binary(), "-nostdin", "-v", "error", "-f", "s16le", "-ar"]
    command += [str(MASTER_RATE), "-ac", "1", "-i", "pipe:0"]
    if settings.codec is not None:
        command += ["-c:a", settings.codec]
    if settings.bitrate is not None:
        command += ["-b:a", settings.bitrate]
    return [*command, *settings.parameters, "-f", settings.container, "-y", str(target)]


class StreamingEncoder:
    """One format written by one ffmpeg process from PCM given piece by piece (blocking
    calls: use it from a worker thread)."""

    def __init__(self, fmt: ExportFormat, directory: Path) -> None:
        self.format = fmt
        self.path = directory / ENCODERS[fmt].filename
        self._started = time.perf_counter()
        self._written = 0
        self.first_audio_s: float | None = None
        self.speech_from: int | None = None
        """Where the speech starts in the input, in samples (set by the caller)."""
        self.speech_audio_s: float | None = None
        try:
            self._process = subprocess.Popen(
                _encoder_command(fmt, self.path),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise AudioToolError(f"cannot start the {fmt.value} encoder: {exc}") from exc

    def write(self, samples: Samples) -> None:
        """Encode ``samples`` next; raises AudioToolError when the encoder has failed."""
        stdin = self._process.stdin
        assert stdin is not None
        for start in range(0, len(samples), CHUNK_SAMPLES):
            chunk = samples[start : start + CHUNK_SAMPLES]
            try:
                stdin.write(to_pcm16(chunk))
                if self.first_audio_s is None:
                    stdin.flush()
            except (BrokenPipeError, ValueError) as exc:
                raise AudioToolError(f"the {self.format.value} encoder stopped: {exc}") from exc
            self._written += len(chunk)
            if self.first_audio_s is None and self._written >= FIRST_AUDIO_SAMPLES:
                self.first_audio_s = time.perf_counter() - self._started
            after = self.speech_from
            if self.speech_audio_s is None and after is not None and self._written > after:
                self.speech_audio_s = time.perf_counter() - self._started

    def finish(self) -> Path:
        """End the input and wait for the file; raises AudioToolError when it is not written."""
        stdin, stderr = self._process.stdin, self._process.stderr
        assert stdin is not None and stderr is not None
        with contextlib.suppress(BrokenPipeError):
            stdin.close()
        errors = stderr.read()
        stderr.close()
        self._process.wait()
        if self._process.returncode != 0:
            message = errors.decode(errors="replace").strip()[-300:]
            raise AudioToolError(f"could not write {self.format.value}: {message}")
        if not self.path.is_file() or self.path.stat().st_size == 0:
            raise AudioToolError(f"encoder wrote no {self.format.value} file")
        if self.first_audio_s is None:
            self.first_audio_s = time.perf_counter() - self._started
        return self.path

    def abort(self) -> None:
        """Stop the encoder and drop what it wrote."""
        self._process.kill()
        for pipe in (self._process.stdin, self._process.stderr):
            if pipe is not None:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()
        self._process.wait()
        self.path.unlink(missing_ok=True)


class StreamedRender:
    """A one-format render under way: its opening is encoded from the start (blocking: run in
    a worker thread), its speech is laid out and encoded by ``finish``."""

    def __init__(self, profile: ChannelProfile, same_header: str | None, directory: Path) -> None:
        if len(profile.formats) != 1:
            raise AudioToolError(f"a streamed render writes one format, not {profile.formats}")
        self.encoder = StreamingEncoder(profile.formats[0], directory)
        try:
            self._stream = ProgrammeStream(profile, same_header, self.encoder.write)
        except BaseException:
            self.encoder.abort()
            raise
        self.encoder.speech_from = self._stream.length

    def finish(
        self, speeches: Sequence[tuple[str, SpeechResult]], directory: Path
    ) -> tuple[AssembledAudio, dict[ExportFormat, Path]]:
        """Lay out and encode the speech; move the file into ``directory``."""
        try:
            assembled = self._stream.finish(speeches)
            encoded = self.encoder.finish()
        except BaseException:
            self.encoder.abort()
            raise
        target = directory / encoded.name
        os.replace(encoded, target)
        return assembled, {self.encoder.format: target}

    def abort(self) -> None:
        """Give the render up (its speech could not be made)."""
        self.encoder.abort()
