"""SIGKILL a real ``broadcaster serve`` once the gateway accepted every segment and before any
receipt came; the gateway keeps the receipts for the account's next bind, as an SMSC does;
restart the server. Every delivery ends confirmed by those receipts, matched through the
channel's records in the store, and no segment reaches the gateway twice. The simulated gateway
runs in this process (on the test's event loop, so everything blocking goes to a thread)."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from broadcaster.cap.serialize import to_xml
from tests.processes import ServeProcess, api
from tests.sms.test_sms_service import bilingual_alert

from .conftest import GatewayFactory, gateway_table, groups
from .test_gateway_sms_service import received

TOKEN = "gateway-crash-token-3"
NUMBERS = 30


def open_records(path: Path) -> int:
    """Deliveries the channel's records in the store hold as accepted and awaiting receipts."""
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        try:
            count = int(
                conn.execute(
                    "SELECT count(*) FROM channel_records WHERE channel = 'gateway'"
                    " AND key LIKE 'd:%'"
                ).fetchone()[0]
            )
        except sqlite3.OperationalError:
            count = 0
    conn.close()
    return count


def toml_table(name: str, table: dict[str, Any]) -> str:
    lines = [f"[channels.{name}]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    return "\n".join(lines)


@pytest.mark.slow
async def test_receipts_after_sigkill_and_restart_confirm_without_a_resend(
    protocol: str,
    make_gateway: GatewayFactory,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    gateway = await make_gateway(receipt_delay=1.5)
    table = gateway_table(protocol, gateway.port, confirm_timeout_seconds=300)
    channels = toml_table("gateway", table)
    server = ServeProcess(tmp_path, groups(NUMBERS, 10), channels, TOKEN)
    record = server.data_dir / "broadcaster.db"
    processes.append(await asyncio.to_thread(server.start))
    alert = to_xml(bilingual_alert(f"gw-sigkill-{protocol}"))
    alert_id = (await asyncio.to_thread(api, server.base, "/api/v1/alerts", TOKEN, alert))["id"]
    deliveries = 2 * NUMBERS
    async with asyncio.timeout(20):
        while open_records(record) < deliveries:
            await asyncio.sleep(0.02)
    processes[0].send_signal(signal.SIGKILL)
    await asyncio.to_thread(processes[0].wait, 10)
    assert gateway.receipts_sent == [], "a receipt came before the kill"
    submitted = len(gateway.records)

    processes.append(await asyncio.to_thread(server.start))
    body = await asyncio.to_thread(server.completed, alert_id, 30)
    processes[1].send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(processes[1].wait, 20) == 0

    assert body["summary"] == {"gateway": {"confirmed": deliveries}}, body["summary"]
    assert len(gateway.records) == submitted  # nothing was submitted again after the restart
    assert len(gateway.receipts_sent) == submitted
    progress = body["progress"]["gateway"]  # of the restarted server: receipts, no submits
    assert progress["submitted"] == 0 and progress["receipted"] == submitted, progress
    assert progress["awaiting_receipts"] == 0
    got = received(gateway)  # raises on a segment sent twice
    assert len(got) == NUMBERS and all(len(texts) == 2 for texts in got.values())
