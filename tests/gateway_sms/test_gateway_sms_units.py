"""What every SMPP command_status and CMPP Result the drivers know becomes for the core, and the
channel's record store: JSON by key, written in group commits, read back after a reopen."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from broadcaster.channel import Confirmation, ConfirmationOutcome
from broadcaster.errors import (
    ChannelError,
    DeviceTimeoutError,
    DeviceUnavailableError,
    PermanentError,
    RetryableError,
    TargetRejectedError,
    UnsupportedError,
)
from broadcaster.store.db import Database
from broadcaster.store.records import ChannelRecords
from channels.gateway_sms import GatewayRecords, channel_error
from channels.gateway_sms.tracking import ReceiptTracker
from drivers.cmpp.status import connect_error, submit_error
from drivers.smpp import status as smpp
from drivers.smsgw.errors import (
    GatewayConnectionLostError,
    GatewayMessageError,
    GatewayTimeoutError,
)
from drivers.smsgw.results import Receipt, ReceiptState, SegmentResult

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
    database: Database,
) -> None:
    store = ChannelRecords(lambda: database, "gateway")
    records = GatewayRecords(store, lambda: 1000.0)
    await records.open()
    writes = (records.put_many({f"d:{n}": {"n": n, "ids": [f"m{n}"]}}) for n in range(500))
    await asyncio.gather(*writes)
    assert records.commits < 10, records.commits  # 500 writes, a handful of transactions
    await records.put_many({"d:7": None})
    records.put_later("s:7", {"outcome": "confirmed"})
    assert await records.get("s:7") == {"outcome": "confirmed"}  # queued, read back at once
    await records.close()

    again = GatewayRecords(store, lambda: 2000.0)
    await again.open()
    try:
        assert await again.get("d:3") == {"n": 3, "ids": ["m3"], "at": 1000.0}
        assert await again.get("d:7") is None
        assert len(await again.scan("d:")) == 499
        assert await again.scan("s:") == {"s:7": {"outcome": "confirmed", "at": 1000.0}}
        assert await again.prune(1500.0, "d:") == 499
        assert await again.scan("d:") == {}
    finally:
        await again.close()


async def test_an_earlier_record_file_is_taken_into_the_store_once(
    database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "gateway-sms-gateway" / "records.sqlite3"
    path.parent.mkdir()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE records (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
            " updated_at REAL NOT NULL)"
        )
        conn.executemany(
            "INSERT INTO records VALUES (?, ?, ?)",
            [
                ("d:1", json.dumps({"number": "+86139", "ids": {"1": "m1"}}), 50.0),
                ("s:2", json.dumps({"outcome": "confirmed", "detail": "1 of 1"}), 60.0),
                ("s:3", json.dumps({"outcome": "failed", "detail": "old"}), 70.0),
            ],
        )
    conn.close()
    store = ChannelRecords(lambda: database, "gateway")
    await store.put("s:3", {"outcome": "confirmed", "detail": "newer", "at": 90.0})
    records = GatewayRecords(store, lambda: 100.0)
    await records.open()
    try:
        assert await records.adopt(path) == 2
        assert await records.adopt(path) == 0  # renamed: taken once
        assert await records.get("d:1") == {"number": "+86139", "ids": {"1": "m1"}, "at": 50.0}
        assert await records.get("s:2") == {"outcome": "confirmed", "detail": "1 of 1", "at": 60.0}
        assert (await records.get("s:3") or {})["detail"] == "newer"  # the store's wins
    finally:
        await records.close()
    assert not path.exists() and path.with_name("records.sqlite3.adopted").exists()


async def test_records_without_a_store_are_a_channel_error() -> None:
    records = GatewayRecords(None, lambda: 0.0)
    with pytest.raises(ChannelError, match="needs the store's channel records"):
        await records.open()


async def test_a_receipt_settling_a_delivery_while_its_outcome_is_read_is_seen(
    database: Database,
) -> None:
    """A send of a later attempt reads the delivery's recorded outcome; the receipt that
    settles it may arrive during that read: the send must see it, not submit again."""
    records = GatewayRecords(ChannelRecords(lambda: database, "gateway"), lambda: 10.0)
    settled: list[Confirmation] = []
    tracker = ReceiptTracker(records, lambda c, _passing: settled.append(c), lambda: 10.0)
    await records.open()
    try:
        sms = tracker.begin(5, "+8613900000005", "digest", 1, 1, 600.0)
        tracker.accepted(sms, SegmentResult("m5", 1, 1, "bind1"))
        reading = asyncio.create_task(tracker.settled(5))
        await asyncio.sleep(0)  # the read is under way on the store's thread
        tracker.on_receipt(Receipt("m5", ReceiptState.DELIVERED, "DELIVRD", "000", None, None))
        found = await reading
    finally:
        await records.close()
    assert settled and found == settled[0]
    assert found.outcome is ConfirmationOutcome.CONFIRMED
