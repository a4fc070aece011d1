"""Text normalisation for speech: Chinese and English readings, dropped URLs and codes."""

from __future__ import annotations

import pytest

from audio.textnorm import normalize_for_speech, zh_digits


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("21:29发布", "21时29分发布"),
        ("08:00起", "8时起"),
        ("21:29:30", "21时29分30秒"),
        ("降雪量10mm", "降雪量10毫米"),
        ("降雪量5-10mm", "降雪量5到10毫米"),
        ("相对湿度30%", "相对湿度百分之30"),
        ("概率30%-50%", "概率百分之30到百分之50"),
        ("最低气温-25℃", "最低气温零下25摄氏度"),
        ("气温-5~3°C", "气温零下5到3摄氏度"),
        ("阵风17.2m/s", "阵风17点2米每秒"),
        ("风速60km/h", "风速60千米每小时"),
        ("6-8级大风", "6到8级大风"),
        ("2026年11月28日", "二零二六年11月28日"),
        ("2026-11-28发布", "二零二六年11月28日发布"),
        ("2026-11-28T21:29:00+08:00发布", "二零二六年11月28日21时29分发布"),
        ("咨询电话12379", "咨询电话一二三七九"),
        ("气压1005hPa", "气压1005百帕"),
        ("转移群众1,200人", "转移群众1200人"),
        ("21:00-23:00有雪", "21时到23时有雪"),
        ("11月28日-30日", "11月28日到30日"),
        ("坐标1,2", "坐标1,2"),
    ],
)
def test_chinese_readings(raw: str, spoken: str) -> None:
    assert normalize_for_speech(raw, "zh-CN") == spoken


def test_urls_and_bracketed_codes_are_dropped_but_bracketed_names_kept() -> None:
    raw = "【乌兰察布市气象台】详见 https://example.cn/w?id=1 （编号W-2026-0042）[ABC123] 请注意"
    spoken = normalize_for_speech(raw, "zh-CN")
    assert "http" not in spoken and "ABC123" not in spoken and "W-2026" not in spoken
    assert "【乌兰察布市气象台】" in spoken
    assert spoken.endswith("请注意")


def test_mail_addresses_are_dropped() -> None:
    assert normalize_for_speech("联系 duty@example.cn 值班室", "zh-CN") == "联系 值班室"


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("Snow 10mm", "Snow 10 millimetres"),
        ("gusts 60km/h", "gusts 60 kilometres per hour"),
        ("low of -25°C", "low of minus 25 degrees Celsius"),
        ("6-8 cm of snow", "6 to 8 centimetres of snow"),
        ("chance 30-40%", "chance 30 to 40 percent"),
        ("see www.example.org now [W-1]", "see now"),
        ("12,500 people", "12500 people"),
    ],
)
def test_english_readings(raw: str, spoken: str) -> None:
    assert normalize_for_speech(raw, "en-GB") == spoken


def test_other_languages_only_lose_urls() -> None:
    assert normalize_for_speech("10mm http://x.mn", "mn") == "10mm"


def test_zh_digits_reads_one_by_one() -> None:
    assert zh_digits("2026") == "二零二六"
    assert zh_digits("10") == "一零"
