"""Command line: ``render`` a warning to a file, write a ``same`` header, write a profile's
``attention`` signal (the clip loudspeaker boxes store, with its SHA-256), rebuild the clips.

``render`` writes the format its ``--out`` name says (``.wav``, ``.mp3``, ``.opus`` or
``.ogg``); ``--format`` is needed only for another name or for ``ulaw`` in a ``.wav``, and one
that contradicts the name is refused.

``add_commands(subparsers)`` adds the commands to any argparse parser and ``run(args)`` runs the
parsed command (the project CLI mounts them as ``broadcaster audio …``); ``main(argv)`` does
both stand-alone (``python -m audio``).
Bad input prints one ``error:`` line and exits 2; other audio and file failures exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import shutil
import sys
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path

from audio.assembly import PROFILES, attention_clip
from audio.clipbuild import build_library, default_phrases
from audio.engines import EdgeTtsConfig, EspeakEngine
from audio.errors import AudioConfigError, AudioError, SameHeaderError, SpeechTextError
from audio.export import ExportFormat, export_one, to_segment
from audio.pcm import MASTER_RATE, to_pcm16
from audio.render import ENGINE_NAMES, Render, Renderer, RendererConfig, RenderRequest
from audio.same import same_message
from audio.speechtext import SpeechText, Status

_PROFILE_FOR_FORMAT = {
    ExportFormat.MP3: "loudspeaker",
    ExportFormat.OPUS: "loudspeaker",
    ExportFormat.WAV: "fm",
    ExportFormat.ULAW: "telephone",
}
_FORMATS_OF_SUFFIX = {
    ".wav": (ExportFormat.WAV, ExportFormat.ULAW),
    ".mp3": (ExportFormat.MP3,),
    ".opus": (ExportFormat.OPUS,),
    ".ogg": (ExportFormat.OPUS,),
}
"""What each output file name may hold; the first is what the name alone means."""


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``render``, ``same``, ``attention`` and ``clips-build`` to ``subparsers``."""
    render = subparsers.add_parser("render", help="render a spoken warning to an audio file")
    render.add_argument("--lang", required=True, help="BCP 47 language tag, e.g. zh-CN or en")
    render.add_argument("--text", required=True, help="the warning text to speak")
    render.add_argument("--status", default="Actual", choices=[s.value for s in Status])
    render.add_argument(
        "--format",
        choices=[f.value for f in ExportFormat],
        help="default: from the --out extension (.wav, .mp3, .opus, .ogg)",
    )
    render.add_argument("--profile", choices=sorted(PROFILES), help="default: from --format")
    render.add_argument("--hazard", default="generic", help="hazard code for stored clips")
    render.add_argument("--level", default="none", help="red, orange, yellow, blue or none")
    render.add_argument("--engines", default=",".join(ENGINE_NAMES), help="engine order")
    render.add_argument("--edge-proxy", help="HTTP proxy URL for edge-tts")
    render.add_argument("--same-header", help="wrap an FM render in this SAME header")
    render.add_argument("--cache-dir", type=Path, help="render cache (default: a temporary one)")
    render.add_argument("--out", required=True, type=Path, help=".wav, .mp3, .opus or .ogg")
    render.set_defaults(run=_render)

    same = subparsers.add_parser("same", help="write a SAME header, attention signal and EOM")
    same.add_argument("--header", required=True, help="ZCZC-ORG-EEE-PSSCCC+TTTT-JJJHHMM-LLLLLLLL-")
    same.add_argument("--attention", type=float, default=8.0, help="attention seconds, 8-25")
    same.add_argument("--rate", type=int, default=MASTER_RATE, help="sample rate of the output")
    same.add_argument("--out", required=True, type=Path, help=".wav, or .raw for s16le")
    same.set_defaults(run=_same)

    attention = subparsers.add_parser(
        "attention", help="write a profile's attention signal, the clip boxes store"
    )
    attention.add_argument("--profile", choices=sorted(PROFILES), default="loudspeaker")
    attention.add_argument("--out", required=True, type=Path, help=".wav, .mp3, .opus or .ogg")
    attention.set_defaults(run=_attention)

    build = subparsers.add_parser("clips-build", help="speak the default clip library")
    build.add_argument("--out", required=True, type=Path, help="library directory")
    build.set_defaults(run=_clips_build)


def output_format(out: Path, asked: str | None) -> ExportFormat:
    """The format to write to ``out``: its extension's, or ``asked`` where they agree.

    Raises AudioConfigError when they disagree or neither says.
    """
    suffix = out.suffix.lower()
    fits = _FORMATS_OF_SUFFIX.get(suffix)
    known = ", ".join(_FORMATS_OF_SUFFIX)
    if asked is None:
        if fits is None:
            raise AudioConfigError(
                f"cannot tell the format from the name {out.name!r}: end it in {known}"
                " or give --format"
            )
        return fits[0]
    fmt = ExportFormat(asked)
    if fits is not None and fmt not in fits:
        raise AudioConfigError(
            f"--format {fmt} does not fit the name {out.name!r}: a {suffix} file holds"
            f" {' or '.join(f.value for f in fits)}"
        )
    return fmt


def _render(args: argparse.Namespace) -> int:
    fmt = output_format(args.out, args.format)
    profile = PROFILES[args.profile or _PROFILE_FOR_FORMAT[fmt]].with_formats(fmt)
    speech = SpeechText(
        language=args.lang, status=args.status, event="", headline=args.text, level=args.level
    )
    request = RenderRequest(speech, hazard=args.hazard, same_header=args.same_header)
    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    with tempfile.TemporaryDirectory(prefix="audio-render-") as scratch:
        config = RendererConfig(
            cache_dir=args.cache_dir or Path(scratch),
            engine_order=engines,
            edge_tts=EdgeTtsConfig(proxy=args.edge_proxy),
        )
        render = asyncio.run(Renderer(config).render(request, profile))
        shutil.copyfile(render.files[fmt], args.out)
    print(_describe(render, args.out))
    return 0


def _describe(render: Render, out: Path) -> str:
    lines = [f"engine: {render.engine}" + (" (fallback)" if render.fallback else "")]
    lines += [f"  tried {a.engine}: {a.outcome} {a.detail}".rstrip() for a in render.attempts]
    lines.append(f"duration: {render.duration_s:.2f} s")
    lines.append(
        f"loudness: {render.loudness_lufs:.1f} LUFS, true peak {render.true_peak_dbtp:.1f} dBTP"
    )
    lines.append(f"marker: {render.marker or 'none'}")
    lines.append(f"wrote: {out}")
    return "\n".join(lines)


def _same(args: argparse.Namespace) -> int:
    if not 8000 <= args.rate <= 192000:
        raise AudioConfigError(f"--rate {args.rate} is outside 8000-192000 Hz")
    samples = same_message(args.header, attention_s=args.attention, rate=args.rate)
    pcm = to_pcm16(samples)
    if args.out.suffix.lower() == ".raw":
        args.out.write_bytes(pcm)
    else:
        with args.out.open("wb") as raw, wave.open(raw, "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(args.rate)
            handle.writeframes(pcm)
    print(f"wrote {args.out}: {len(samples) / args.rate:.2f} s at {args.rate} Hz")
    return 0


def _attention(args: argparse.Namespace) -> int:
    fmt = output_format(args.out, None)
    samples = attention_clip(PROFILES[args.profile])
    if not len(samples):
        raise AudioConfigError(f"profile {args.profile!r} has no attention signal")
    with tempfile.TemporaryDirectory(prefix="audio-attention-") as scratch:
        written = export_one(to_segment(samples), fmt, Path(scratch))
        shutil.copyfile(written, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out}: {len(samples) / MASTER_RATE:.2f} s, sha256 {digest}")
    return 0


def _clips_build(args: argparse.Namespace) -> int:
    manifest = asyncio.run(build_library(EspeakEngine(), args.out, default_phrases()))
    print(f"wrote {manifest}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the command ``add_commands`` parsed; bad input is one ``error:`` line, exit 2."""
    try:
        return int(args.run(args))
    except (AudioConfigError, SpeechTextError, SameHeaderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run one audio command stand-alone; return the process exit status."""
    parser = argparse.ArgumentParser(prog="audio", description=__doc__.splitlines()[0])
    add_commands(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))
