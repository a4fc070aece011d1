"""Text normalisation for speech: make times, dates, numbers and units read naturally.

Chinese (``zh*``): ``21:29`` → ``21时29分``, ``2026-11-28`` → ``二零二六年11月28日``,
``10mm`` → ``10毫米``, ``30%`` → ``百分之30``, ``-25℃`` → ``零下25摄氏度``, ``6-8级`` → ``6到8级``,
``10.5`` → ``10点5``, ``21:00-23:00`` → ``21时到23时``, hotline numbers digit by digit.
English (``en*``): units and percentages spelled out, ``6-8`` → ``6 to 8``. Every language:
URLs, e-mail addresses and bracketed codes such as ``[W-2026-0042]`` or ``（ABC123）`` are
dropped, thousands separators removed (``1,200`` → ``1200``), whitespace collapsed.
Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from audio.languages import matches

_URL = re.compile(r"(?:https?://|ftp://|www\.)[^\s，。；、）)\]】]+", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A bracket holding a code, optionally after a short label: [W-2026-0042], （编号：ABC123）.
_BRACKETED_CODE = re.compile(
    r"[\[【(（〔<《]\s*(?:[\u4e00-\u9fff]{1,4}[:：]?\s*)?"
    r"(?=[^\]】)）〕>》]*[A-Za-z0-9])[A-Za-z0-9_\-./:#+\s]*[\]】)）〕>》]"
)
_SPACES = re.compile(r"\s+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NUM = r"\d+(?:\.\d+)?"
_RANGE_SEP = r"\s*[-~～—–至]\s*"

_ZH_DIGITS = "零一二三四五六七八九"

# Longest unit spellings first, so "km/h" wins over "km" and "mm" over "m".
_ZH_UNITS: tuple[tuple[str, str], ...] = (
    ("μg/m³", "微克每立方米"),
    ("ug/m3", "微克每立方米"),
    ("mg/m³", "毫克每立方米"),
    ("mg/m3", "毫克每立方米"),
    ("km/h", "千米每小时"),
    ("m/s", "米每秒"),
    ("km²", "平方千米"),
    ("m³", "立方米"),
    ("hPa", "百帕"),
    ("°C", "摄氏度"),
    ("℃", "摄氏度"),
    ("mm", "毫米"),
    ("cm", "厘米"),
    ("km", "千米"),
    ("kg", "千克"),
    ("min", "分钟"),
    ("h", "小时"),
    ("m", "米"),
)
_EN_UNITS: tuple[tuple[str, str], ...] = (
    ("km/h", "kilometres per hour"),
    ("m/s", "metres per second"),
    ("hPa", "hectopascals"),
    ("°C", "degrees Celsius"),
    ("℃", "degrees Celsius"),
    ("mm", "millimetres"),
    ("cm", "centimetres"),
    ("km", "kilometres"),
    ("kg", "kilograms"),
    ("m", "metres"),
)


def normalize_for_speech(text: str, language: str) -> str:
    """Return ``text`` rewritten for a speech engine in ``language`` (a BCP 47 tag)."""
    cleaned = _drop_unspoken(text)
    if matches("zh", language) or matches("zh-Hant", language):
        cleaned = _normalize_zh(cleaned)
    elif matches("en", language):
        cleaned = _normalize_en(cleaned)
    return _SPACES.sub(" ", cleaned).strip()


def zh_digits(number: str) -> str:
    """Read a string of ASCII digits one by one in Chinese: ``2026`` → ``二零二六``."""
    return "".join(_ZH_DIGITS[int(d)] if d.isdigit() else d for d in number)


def _drop_unspoken(text: str) -> str:
    text = _URL.sub("", text)
    text = _EMAIL.sub("", text)
    text = _BRACKETED_CODE.sub("", text)
    return _THOUSANDS.sub("", text)


def _unit_pattern(units: tuple[tuple[str, str], ...]) -> str:
    # A unit must not run into further Latin letters ("5 mmHg" is not "5 mm").
    return "(" + "|".join(re.escape(u) for u, _ in units) + ")(?![A-Za-z])"


def _unit_lookahead(units: tuple[tuple[str, str], ...]) -> str:
    return "(?=[%％]|" + "|".join(re.escape(u) for u, _ in units) + ")"


def _sub(pattern: str, repl: Callable[[re.Match[str]], str], text: str) -> str:
    return re.sub(pattern, repl, text)


def _strip_zero(number: str) -> str:
    return number.lstrip("0") or "0"


def _normalize_zh(text: str) -> str:
    units = dict(_ZH_UNITS)
    unit_re = _unit_pattern(_ZH_UNITS)

    def date(m: re.Match[str]) -> str:
        return f"{zh_digits(m[1])}年{_strip_zero(m[2])}月{_strip_zero(m[3])}日"

    def clock(m: re.Match[str]) -> str:
        spoken = f"{_strip_zero(m[1])}时"
        if m[2] != "00" or m[3]:
            spoken += f"{_strip_zero(m[2])}分"
        if m[3] and m[3] != "00":
            spoken += f"{_strip_zero(m[3])}秒"
        return spoken

    def temp_range(m: re.Match[str]) -> str:
        return f"{_signed_zh(m[1])}到{_signed_zh(m[2])}摄氏度"

    def temp(m: re.Match[str]) -> str:
        return f"{_signed_zh(m[1])}摄氏度"

    def percent_range(m: re.Match[str]) -> str:
        return f"百分之{m[1]}到百分之{m[2]}"

    def unit_range(m: re.Match[str]) -> str:
        return f"{m[1]}到{m[2]}{units[m[3]]}"

    def unit(m: re.Match[str]) -> str:
        return f"{_signed_zh(m[1])}{units[m[2]]}"

    text = _sub(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:T|\s*)?", date, text)
    text = _sub(r"(\d{4})年", lambda m: f"{zh_digits(m[1])}年", text)
    # A zone offset is read only after seconds (CAP times): "21:00-23:00" is a range.
    text = _sub(r"(?<![\d:])(\d{1,2}):(\d{2})(?::(\d{2})(?:[+-]\d{2}:\d{2})?)?", clock, text)
    text = _sub(rf"(-?{_NUM}){_RANGE_SEP}(-?{_NUM})\s*(?:°C|℃)", temp_range, text)
    text = _sub(rf"(-?{_NUM})\s*(?:°C|℃)", temp, text)
    text = _sub(rf"({_NUM})%?{_RANGE_SEP}({_NUM})\s*[%％]", percent_range, text)
    text = _sub(rf"({_NUM})\s*[%％]", lambda m: f"百分之{m[1]}", text)
    text = _sub(rf"({_NUM}){_RANGE_SEP}({_NUM})\s*{unit_re}", unit_range, text)
    text = _sub(rf"(-?{_NUM})\s*{unit_re}", unit, text)
    text = _sub(rf"({_NUM}){_RANGE_SEP}({_NUM})(?=\s*[\u4e00-\u9fff])", _zh_range, text)
    text = _sub(r"([年月日时分秒])\s*[-~～—–]\s*(?=[\d零一二三四五六七八九])", _zh_to, text)
    text = _sub(r"(电话|热线|拨打|号码)[：:\s]*(\d{3,})", lambda m: m[1] + zh_digits(m[2]), text)
    return _sub(r"(\d+)\.(\d+)", lambda m: f"{m[1]}点{m[2]}", text)


def _zh_to(m: re.Match[str]) -> str:
    return f"{m[1]}到"


def _zh_range(m: re.Match[str]) -> str:
    return f"{m[1]}到{m[2]}"


def _signed_zh(number: str) -> str:
    return f"零下{number[1:]}" if number.startswith("-") else number


def _normalize_en(text: str) -> str:
    units = dict(_EN_UNITS)
    unit_re = _unit_pattern(_EN_UNITS)

    def unit(m: re.Match[str]) -> str:
        number = m[1]
        if number.startswith("-"):
            number = "minus " + number[1:]
        return f"{number} {units[m[2]]}"

    text = _sub(
        rf"({_NUM}){_RANGE_SEP}({_NUM})\s*{_unit_lookahead(_EN_UNITS)}",
        lambda m: f"{m[1]} to {m[2]} ",
        text,
    )
    text = _sub(rf"(-?{_NUM})\s*{unit_re}", unit, text)
    return _sub(rf"({_NUM})\s*[%％]", lambda m: f"{m[1]} percent", text)
