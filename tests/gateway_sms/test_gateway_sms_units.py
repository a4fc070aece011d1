"""What every SMPP command_status and CMPP Result the drivers know becomes for the core, and the
channel's record store: JSON by key, written in group commits, read back after a reopen."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broadcaster.errors import (
    ChannelError,
    DeviceTimeoutError,
    DeviceUnavailableError,
    PermanentError,
    RetryableError,
    TargetRejectedError,
    UnsupportedError,
)
from channels.gateway_sms import GatewayRecords, channel_error
from drivers.cmpp.status import connect_error, submit_error
from drivers.smpp import status as smpp
from drivers.smsgw.errors import (
    GatewayConnectionLostError,
    GatewayMessageError,
    GatewayTimeoutError,
)

SMPP_RETRY = {0x04, 0x08, 0x14, 0x45, 0x58, 0x64, 0xFE, 0xFF}
SMPP_WRONG_NUMBER = {0x0B, 0x50, 0x51}
CMPP_RETRY = {3, 8, 14, 200}
CMPP_WRONG_NUMBER = {13}


def kind(error: ChannelError) -> str:
    if isinstance(error, TargetRejectedError):
        return "wrong number"
    if isinstance(error, RetryableError):
        return "retry"
    assert isinstance(error, PermanentError)
    return "permanent"


@pytest.mark.parametrize("code", sorted(set(smpp.NAMES) - {smpp.ESME_ROK} | {0x400}))
def test_every_smpp_submit_status_is_retried_or_failed_as_documented(code: int) -> None:
    error = channel_error(smpp.status_error(code, "submit_sm"), "+8613900000001")
    expected = (
        "retry"
        if code in SMPP_RETRY or 0x400 <= code <= 0x4FF
        else "wrong number"
        if code in SMPP_WRONG_NUMBER
        else "permanent"
    )
    assert kind(error) == expected, (hex(code), error)
    assert f"{code:#x}" in str(error)


@pytest.mark.parametrize("result", [*range(1, 14), 14, 200])
def test_every_cmpp_submit_result_is_retried_or_failed_as_documented(result: int) -> None:
    error = channel_error(submit_error(result), "+8613900000001")
    expected = (
        "retry"
        if result in CMPP_RETRY
        else "wrong number"
        if result in CMPP_WRONG_NUMBER
        else "permanent"
    )
    assert kind(error) == expected, (result, error)


def test_throttling_carries_a_pause_and_link_faults_are_device_errors() -> None:
    throttled = channel_error(smpp.status_error(0x58, "submit_sm"), "+86139", retry_after=5)
    assert isinstance(throttled, RetryableError) and throttled.retry_after == 5
    assert isinstance(channel_error(GatewayTimeoutError("t"), "+86139"), DeviceTimeoutError)
    lost = channel_error(GatewayConnectionLostError("lost"), "+86139")
    assert isinstance(lost, DeviceUnavailableError)
    for status in (1, 2, 3, 4):  # a refused bind is the link's fault, not the number's
        assert isinstance(channel_error(connect_error(status), "+86139"), DeviceUnavailableError)
    assert isinstance(channel_error(GatewayMessageError("long"), "+86139"), UnsupportedError)


async def test_records_are_committed_together_and_read_back_after_a_reopen(
    tmp_path: Path,
) -> None:
    path = tmp_path / "records.sqlite3"
    records = GatewayRecords(path, lambda: 1000.0)
    await records.open()
    await asyncio.gather(*(records.put(f"d:{n}", {"n": n, "ids": [f"m{n}"]}) for n in range(500)))
    assert records.commits < 10, records.commits  # 500 writes, a handful of transactions
    await records.delete("d:7")
    records.put_later("s:7", {"outcome": "confirmed"})
    assert await records.get("s:7") == {"outcome": "confirmed"}  # queued, read back at once
    await records.close()

    again = GatewayRecords(path, lambda: 2000.0)
    await again.open()
    try:
        assert await again.get("d:3") == {"n": 3, "ids": ["m3"]}
        assert await again.get("d:7") is None
        assert len(await again.scan("d:")) == 499
        assert await again.scan("s:") == {"s:7": {"outcome": "confirmed"}}
        assert await again.prune(1500.0, "d:") == 499
        assert await again.scan("d:") == {}
    finally:
        await again.close()


async def test_an_unopenable_record_file_is_a_channel_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    records = GatewayRecords(blocker / "records.sqlite3", lambda: 0.0)
    with pytest.raises(ChannelError, match="cannot open"):
        await records.open()
