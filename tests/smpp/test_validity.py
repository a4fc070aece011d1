"""How long the SMSC keeps a segment: submit_sm's validity_period (SMPP 3.4 §7.1.1) is the time
left until the caller's ``valid_until`` as a relative time, at least five minutes and never
longer than a configured validity_period; checked in the submit_sm the simulated SMSC receives
over loopback TCP."""

from __future__ import annotations

import time

import pytest

from drivers.smpp.client import SmppClient
from drivers.smpp.times import relative_time, seconds_until
from drivers.smsgw.errors import GatewayConfigError

from .conftest import SimulatorFactory, client_config


def relative_seconds(value: str) -> int:
    """A relative time's days, hours, minutes and seconds, read by hand (§7.1.1)."""
    assert value.endswith("000R") and value[:4] == "0000", value
    days, hours, minutes, seconds = (int(value[i : i + 2]) for i in range(4, 12, 2))
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def test_relative_times_are_written_as_days_hours_minutes_seconds() -> None:
    assert relative_time(600) == "000000001000000R"
    assert relative_time(86_400 + 3_600 + 60 + 1.2) == "000001010102000R"
    assert relative_time(400 * 86_400) == "000099235959000R"


def test_configured_times_read_in_both_forms() -> None:
    now = 1_767_268_800.0  # 2026-01-01 12:00:00 UTC
    assert seconds_until("000001000000000R", now) == 86_400
    assert seconds_until("260101210000032+", now) == 3_600  # 21:00 in UTC+8 is 13:00 UTC
    assert seconds_until("260101120000004-", now) == 3_600  # 12:00 in UTC-1 is 13:00 UTC
    for bad in ("", "2601011200", "260101120000032*", "261301120000032+"):
        with pytest.raises(GatewayConfigError):
            seconds_until(bad, now)
    with pytest.raises(GatewayConfigError, match="validity_period"):
        client_config(1, validity_period="tomorrow").client_settings()


async def test_each_submit_is_valid_until_the_callers_time(make_smsc: SimulatorFactory) -> None:
    smsc = await make_smsc()
    client = SmppClient(client_config(smsc.port))
    await client.start()
    try:
        start = time.time()
        await client.submit("8613600000001", "x", valid_until=start + 3_600)
        await client.submit("8613600000002", "x", valid_until=start + 10)  # nearly expired
        await client.submit("8613600000003", "x")
    finally:
        await client.close()
    hour, soon, unset = (record.segment.validity for record in smsc.records)
    assert 3_590 <= relative_seconds(hour) <= 3_600
    assert relative_seconds(soon) == 300
    assert unset == ""  # the SMSC's default, as before


async def test_a_configured_validity_period_is_the_longest(make_smsc: SimulatorFactory) -> None:
    smsc = await make_smsc()
    client = SmppClient(client_config(smsc.port, validity_period="000000003000000R"))
    await client.start()
    try:
        now = time.time()
        await client.submit("8613600000001", "x", valid_until=now + 3_600)
        await client.submit("8613600000002", "x", valid_until=now + 900)
        await client.submit("8613600000003", "x")
    finally:
        await client.close()
    longest, shorter, unset = (record.segment.validity for record in smsc.records)
    assert longest == "000000003000000R"
    assert 890 <= relative_seconds(shorter) <= 900
    assert unset == "000000003000000R"
