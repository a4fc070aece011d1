"""SAME headers: rendered by the package, decoded back by Debian's multimon-ng."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from audio.errors import SameHeaderError
from audio.pcm import to_pcm16
from audio.same import BAUD, afsk, parse_header, same_message

from .conftest import spectrum_peaks

HEADER = "ZCZC-CIV-EVI-150900-150902+0100-3321329-ULANQAB -"


def multimon(raw_22050: Path) -> list[str]:
    done = subprocess.run(
        ["multimon-ng", "-q", "-t", "raw", "-a", "EAS", str(raw_22050)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return [line for line in done.stdout.splitlines() if line.startswith("EAS:")]


def test_multimon_decodes_the_header_at_22050_hz(tmp_path: Path) -> None:
    raw = tmp_path / "same.raw"
    raw.write_bytes(to_pcm16(same_message(HEADER, rate=22_050)))
    assert multimon(raw) == [f"EAS: {HEADER}", "EAS: NNNN", "EAS: NNNN", "EAS: NNNN"]


def test_multimon_decodes_the_header_after_resampling_from_48_khz(tmp_path: Path) -> None:
    master = tmp_path / "same48.raw"
    master.write_bytes(to_pcm16(same_message(HEADER, rate=48_000)))
    resampled = tmp_path / "same22.raw"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "s16le",
            "-ar",
            "48000",
            "-ac",
            "1",
            "-i",
            str(master),
            "-f",
            "s16le",
            "-ar",
            "22050",
            str(resampled),
        ],
        check=True,
    )
    assert multimon(resampled)[0] == f"EAS: {HEADER}"


def test_afsk_sends_mark_for_ones_and_space_for_zeros_at_the_bit_rate() -> None:
    ones = afsk(bytes([0x7F]) * 40, 48_000)
    zeros = afsk(bytes([0x00]) * 40, 48_000)
    assert abs(len(ones) - (16 + 40) * 8 * 48_000 / BAUD) <= 1
    tail = int(30 * 8 * 48_000 / BAUD)
    assert abs(spectrum_peaks(ones[-tail:], 48_000, 1)[0] - 2083.3) < 15
    assert abs(spectrum_peaks(zeros[-tail:], 48_000, 1)[0] - 1562.5) < 15


def test_message_layout_has_attention_tones_between_bursts() -> None:
    samples = same_message(HEADER, message=np.zeros(48_000, dtype=np.float32), rate=48_000)
    burst = int((16 + len(HEADER)) * 8 * 48_000 / BAUD) + 1
    attention_start = 3 * (burst + 48_000)
    attention = samples[attention_start + 4800 : attention_start + 8 * 48_000 - 4800]
    low, high = spectrum_peaks(attention, 48_000, 2)
    assert abs(low - 853) < 2 and abs(high - 960) < 2


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("ZCZC-CIV-EVI-150900+0100-3321329-ULANQAB", "not a SAME header"),
        ("ZCZC-XYZ-EVI-150900+0100-3321329-ULANQAB -", "originator"),
        ("ZCZC-CIV-EVI-150900+0110-3321329-ULANQAB -", "purge time"),
        ("ZCZC-CIV-EVI-150900+0100-3992529-ULANQAB -", "issue time"),
        ("ZCZC-CIV-EVI-" + "-".join(["150900"] * 32) + "+0100-3321329-ULANQAB -", "at most 31"),
        ("NNNN", "not a SAME header"),
    ],
)
def test_bad_headers_are_refused_with_the_field_named(header: str, problem: str) -> None:
    with pytest.raises(SameHeaderError, match=problem):
        parse_header(header)


def test_parsed_header_round_trips() -> None:
    parsed = parse_header(HEADER)
    assert parsed.locations == ("150900", "150902")
    assert parsed.text == HEADER


def test_non_ascii_payload_is_refused() -> None:
    with pytest.raises(SameHeaderError, match="7-bit"):
        afsk("预警".encode())
