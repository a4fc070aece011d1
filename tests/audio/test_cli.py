"""The audio command line, run as a real process."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from audio.cli import main

from .conftest import ebur128, probe

HEADER = "ZCZC-WXR-BZW-150900+0200-3321329-ULANQAB -"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audio", *args], capture_output=True, text=True, timeout=60
    )


def test_render_prints_engine_duration_and_loudness(tmp_path: Path, refused_proxy: str) -> None:
    out = tmp_path / "warning.mp3"
    done = run(
        "render",
        "--lang",
        "zh-CN",
        "--text",
        "暴雪红色预警：预计21:29起降雪量10mm",
        "--status",
        "Exercise",
        "--format",
        "mp3",
        "--edge-proxy",
        refused_proxy,
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "engine: espeak-ng (fallback)" in done.stdout
    assert "tried edge-tts: failed" in done.stdout
    assert "marker: 这是一次演练" in done.stdout
    duration = float(done.stdout.split("duration: ")[1].split(" s")[0])
    loudness = float(done.stdout.split("loudness: ")[1].split(" LUFS")[0])
    assert probe(out).duration_s == pytest.approx(duration, abs=0.1)
    assert ebur128(out).integrated_lufs == pytest.approx(loudness, abs=1.0)


def test_same_writes_audio_multimon_decodes(tmp_path: Path) -> None:
    raw = tmp_path / "same.raw"
    done = run("same", "--header", HEADER, "--rate", "22050", "--out", str(raw))
    assert done.returncode == 0, done.stderr
    decoded = subprocess.run(
        ["multimon-ng", "-q", "-t", "raw", "-a", "EAS", str(raw)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert decoded.splitlines()[0] == f"EAS: {HEADER}"
    wav = tmp_path / "same.wav"
    assert run("same", "--header", HEADER, "--out", str(wav)).returncode == 0
    facts = probe(wav)
    assert (facts.codec, facts.sample_rate, facts.channels) == ("pcm_s16le", 48_000, 1)


@pytest.mark.parametrize(
    ("name", "container", "codec"),
    [
        ("a.mp3", "mp3", "mp3"),
        ("a.ogg", "ogg", "opus"),
        ("a.opus", "ogg", "opus"),
        ("a.wav", "wav", "pcm_s16le"),
    ],
)
def test_render_writes_the_format_its_file_name_says(
    tmp_path: Path, name: str, container: str, codec: str
) -> None:
    out = tmp_path / name
    done = run(
        "render", "--lang", "en", "--text", "Flood warning", "--engines", "espeak-ng",
        "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = probe(out)
    assert (found.container, found.codec) == (container, codec)


def test_render_ulaw_goes_in_a_wav_when_asked(tmp_path: Path) -> None:
    out = tmp_path / "page.wav"
    done = run(
        "render", "--lang", "en", "--text", "Flood warning", "--engines", "espeak-ng",
        "--format", "ulaw", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = probe(out)
    assert (found.container, found.codec, found.sample_rate) == ("wav", "pcm_mulaw", 8000)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("same", "--header", "ZCZC-BAD", "--out", "x.wav"), "not a SAME header"),
        (("same", "--header", HEADER, "--attention", "3", "--out", "x.wav"), "8-25 s"),
        (("render", "--lang", "fr", "--text", "x", "--out", "x.wav"), "no speech template"),
        (
            ("render", "--lang", "en", "--text", "x", "--engines", "magic", "--out", "x.wav"),
            "unknown speech engines",
        ),
        (
            ("render", "--lang", "en", "--text", "x", "--format", "wav", "--out", "x.mp3"),
            "--format wav does not fit the name 'x.mp3': a .mp3 file holds mp3",
        ),
        (
            ("render", "--lang", "en", "--text", "x", "--format", "mp3", "--out", "x.ogg"),
            "a .ogg file holds opus",
        ),
        (
            ("render", "--lang", "en", "--text", "x", "--out", "x.flac"),
            "cannot tell the format from the name 'x.flac'",
        ),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(
    tmp_path: Path,
    args: tuple[str, ...],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(list(args)) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: ") and message in stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    done = run("same", "--header", "ZCZC-BAD", "--out", str(tmp_path / "x.wav"))
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def test_an_unwritable_output_is_one_error_line(tmp_path: Path) -> None:
    done = run("same", "--header", HEADER, "--out", str(tmp_path / "missing" / "same.wav"))
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def test_attention_writes_the_clip_boxes_store_with_its_hash(tmp_path: Path) -> None:
    out = tmp_path / "attention.opus"
    done = run("attention", "--out", str(out))
    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert done.stdout.strip() == f"wrote {out}: 3.00 s, sha256 {digest}"
    assert probe(out).codec == "opus"
    assert ebur128(out).integrated_lufs == pytest.approx(-16.0, abs=1.0)
    refused = run("attention", "--out", str(tmp_path / "attention.txt"))
    assert refused.returncode == 2 and refused.stderr.startswith("error: cannot tell the format")
