"""The gateway keeps a warning for a phone that is off only until its alert expires: each
submit the simulated gateway receives over loopback TCP carries the time left until the
delivery's expiry (at least five minutes), as SMPP validity_period (relative, SMPP 3.4 §7.1.1)
or CMPP ValId_Time (absolute with its offset from UTC)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from broadcaster.channel import OutgoingDelivery, SendResult
from broadcaster.delivery import Target
from broadcaster.store.db import Database
from broadcaster.testing.messages import contract_message

from .conftest import GatewayFactory
from .test_gateway_sms_batch import build


def expiry_of(validity: str, protocol: str, sent: float) -> float:
    """When the gateway gives the segment up, read by hand from the field."""
    assert validity, "no validity: the gateway keeps the segment for its own default"
    if protocol == "smpp":
        assert validity.endswith("000R") and validity[:4] == "0000", validity
        days, hours, minutes, seconds = (int(validity[i : i + 2]) for i in range(4, 12, 2))
        return sent + ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    quarters = int(validity[13:15]) * (1 if validity[15] == "+" else -1)
    zone = timezone(timedelta(minutes=15 * quarters))
    local = datetime.strptime(validity[:12], "%y%m%d%H%M%S").replace(tzinfo=zone)
    return local.timestamp() + int(validity[12]) / 10


async def test_each_submit_is_valid_until_its_alert_expires(
    protocol: str, make_gateway: GatewayFactory, database: Database, tmp_path: Path
) -> None:
    gateway = await make_gateway()
    channel = build("gateway", database, tmp_path, protocol, gateway.port)
    message = contract_message()
    sent = time.time()
    expiries = {
        "+8613900000001": sent + 600,
        "+8613900000002": sent + 30,
        "+8613900000003": sent + 7_200,
    }
    deliveries = [
        OutgoingDelivery(
            n,
            message,
            Target(id=f"t{n}", channel="gateway", name=f"t{n}", address=number),
            0,
            1,
            f"k{n}",
            expires_at,
        )
        for n, (number, expires_at) in enumerate(expiries.items(), start=1)
    ]
    await channel.start()
    try:
        assert channel.client is not None
        await channel.client.wait_binds_up(2, 5)
        results = await channel.send_many(deliveries)
    finally:
        await channel.stop()
    assert all(isinstance(result, SendResult) for result in results)
    kept = {
        "+" + record.segment.destination: expiry_of(record.segment.validity, protocol, sent)
        for record in gateway.records
    }
    assert kept.keys() == expiries.keys()
    assert abs(kept["+8613900000001"] - (sent + 600)) < 3
    assert abs(kept["+8613900000002"] - (sent + 300)) < 3  # never less than five minutes
    assert abs(kept["+8613900000003"] - (sent + 7_200)) < 3
