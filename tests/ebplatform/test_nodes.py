"""The ebplatform channel on two nodes sharing one PostgreSQL store: only the node holding the
channel's ``state-loops`` lease polls the platforms for state, and when that node dies (its lease
left to run out) the other takes the polls over."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

from broadcaster.service import BroadcasterService
from broadcaster.testing.pgserver import PgServer
from drivers.ebd import EbdType
from drivers.ebd.simulator import EbdPlatformSimulator
from tests.core.support import make_alert, wait_for_deliveries
from tests.ebplatform.conftest import Pki, channel_table, county_platforms, free_port, server

LEASE = 2.0
POLL = 0.1


def polls_by_node(sim: EbdPlatformSimulator) -> Counter[str]:
    """The EBMStateRequests received, by the node that sent each (its reply URL)."""
    return Counter(str(ebd.src_url) for ebd in sim.received_of(EbdType.EBM_STATE_REQUEST))


def holder(service: BroadcasterService) -> bool:
    channel = service.channels["eb"]
    return bool(channel.state_loops.held)  # type: ignore[attr-defined]


async def test_one_node_polls_and_the_other_takes_over_when_it_dies(
    tmp_path: Path, pki: Pki, pg_server: PgServer
) -> None:
    url = pg_server.migrated()
    nowhere = f"http://127.0.0.1:{free_port()}/ebd"  # the platform answers polls only
    async with county_platforms(pki, state_delay=600, state_inline=True, state_url=nowhere) as sims:
        sim = sims["zhuozi"]
        table = channel_table(pki, {"zhuozi": sim.url}, state_poll_seconds=POLL)
        stores = {node: {"url": url, "node": node, "lease_seconds": LEASE} for node in ("a", "b")}
        for node in stores:
            (tmp_path / node).mkdir()
        async with (
            server(tmp_path / "a", {"eb": table}, store=stores["a"]) as (a, base_a),
            server(tmp_path / "b", {"eb": table}, store=stores["b"]) as (b, base_b),
        ):
            result = await a.submit(make_alert("ebd-two-nodes"), origin="test")
            await wait_for_deliveries(
                a, result.alert_id, lambda rows: rows[0]["state"] == "accepted"
            )
            await asyncio.sleep(LEASE * 1.5)  # many poll periods, past a lease renewal
            assert holder(a) != holder(b)
            first, second = (a, b) if holder(a) else (b, a)
            polled = polls_by_node(sim)
            assert list(polled) == [f"{base_a if first is a else base_b}/channels/eb/ebd"]
            assert polled.most_common(1)[0][1] >= 2  # polls went on, all from one node

            # The holder dies: its loops end, and its lease stays until it runs out.
            died_at = time.time()
            await first.channels["eb"].state_loops.stop()  # type: ignore[attr-defined]
            await first.database.run(
                first.database.conn.execute,
                "INSERT INTO device_leases (resource, node, until) VALUES (?, ?, ?)",
                ("eb:state-loops", first.database.node, died_at + LEASE),
            )
            dead = f"{base_a if first is a else base_b}/channels/eb/ebd"
            other = f"{base_b if second is b else base_a}/channels/eb/ebd"
            await asyncio.sleep(POLL * 3)  # a poll the dead node sent before it stopped lands
            before = polls_by_node(sim)
            assert before[other] == 0
            async with asyncio.timeout(LEASE + LEASE / 3 + 3):
                while not holder(second):
                    await asyncio.sleep(0.05)
            took_over = time.time() - died_at
            assert LEASE - 0.2 <= took_over <= LEASE + LEASE / 3 + 2, took_over
            # Nobody polled meanwhile: the dead node stayed silent, and the new holder sent
            # at most the poll that begins with its taking the device over.
            after = polls_by_node(sim)
            assert after[dead] == before[dead]
            assert after[other] <= 1
            async with asyncio.timeout(10):  # the new holder polls now
                while polls_by_node(sim)[other] < 2:
                    await asyncio.sleep(POLL)
    pg_server.drop(url)
