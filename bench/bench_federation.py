"""Federation benchmark: one city alert for the whole of Ulanqab, relayed to its 11 county nodes,
each delivering to 100 villages on its ``log`` channel and reporting back.

Twelve services in this process, each with its own store and its API on a loopback socket; the
city relays with the ``relay`` channel, each county reports with its reporter. Measured: from
the city's answer to the submission until the city shows every relay delivery confirmed (every
county's 100 deliveries final and reported). Goal: under 10 s on a 2-core machine. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.cap.serialize import to_xml
from broadcaster.config import Config
from broadcaster.federationconfig import NodeConfig
from broadcaster.service import BroadcasterService
from tests.core.support import make_alert, make_config, village_targets

COUNTIES = (
    "150902", "150921", "150922", "150923", "150924", "150925",
    "150926", "150927", "150928", "150929", "150981",
)  # fmt: skip
TARGETS_PER_COUNTY = 100
OFFICER = "bench-officer-token-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with(config: Config, tokens: list[dict[str, Any]], node: dict[str, Any]) -> Config:
    return config.model_copy(
        update={
            "api": config.api.model_validate({"tokens": tokens}),
            "node": NodeConfig.model_validate(node),
        }
    )


def _configs(root: Path) -> tuple[Config, list[Config], int, list[int]]:
    city_port = _free_port()
    ports = [_free_port() for _ in COUNTIES]
    counties = []
    for code in COUNTIES:
        folder = root / code
        folder.mkdir()
        targets = village_targets("log", TARGETS_PER_COUNTY, county=code + "000000")
        config = make_config(folder, {"log": {"type": "log", "path": "log.jsonl"}}, targets)
        report_to = {
            "client": "city",
            "url": f"http://127.0.0.1:{city_port}",
            "token": f"r{code}" * 4,
        }
        node = {"role": "county", "division": code, "report_to": [report_to]}
        counties.append(_with(config, [{"name": "city", "token": f"d{code}" * 4}], node))
    relay = {
        "type": "relay",
        "nodes": [
            {"division": code, "url": f"http://127.0.0.1:{port}", "token": f"d{code}" * 4}
            for code, port in zip(COUNTIES, ports, strict=True)
        ],
    }
    (root / "city").mkdir()
    city = make_config(root / "city", {"relay": relay}, [])
    tokens = [{"name": "officer", "token": OFFICER}] + [
        {"name": f"county-{code}", "token": f"r{code}" * 4, "node": code} for code in COUNTIES
    ]
    city = _with(city, tokens, {"role": "city", "division": "150900"})
    return city, counties, city_port, ports


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        city, counties, city_port, ports = _configs(Path(folder))
        servers = [
            TestServer(make_app(BroadcasterService(c)), port=p)
            for c, p in zip(counties, ports, strict=True)
        ]
        servers.append(TestServer(make_app(BroadcasterService(city)), port=city_port))
        started = time.perf_counter()
        for server in servers:
            await server.start_server()
        print(f"12 nodes started in {time.perf_counter() - started:.1f} s")
        headers = {"Authorization": f"Bearer {OFFICER}"}
        base = f"http://127.0.0.1:{city_port}"
        alert = make_alert("bench-federation", geocodes=("150900000000",), headline="全市暴雪预警")
        async with aiohttp.ClientSession(base_url=base, headers=headers) as session:
            async with session.post(
                "/api/v1/alerts",
                data=to_xml(alert),
                headers={"Content-Type": "application/cap+xml"},
            ) as response:
                answer = await response.json()
            submitted = time.perf_counter()
            path = f"/api/v1/alerts/{answer['id']}/deliveries"
            first_accepted = None
            while True:
                async with session.get(path) as response:
                    body = await response.json()
                states = body["summary"].get("relay", {})
                if first_accepted is None and states.get("accepted", 0) + states.get(
                    "confirmed", 0
                ) == len(COUNTIES):
                    first_accepted = time.perf_counter() - submitted
                if states.get("confirmed", 0) == len(COUNTIES):
                    break
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - submitted
            reported = sum(d["report"]["summary"]["log"]["confirmed"] for d in body["deliveries"])
        print(f"relay deliveries planned: {answer['planned']}")
        print(f"all 11 counties accepted the alert: {first_accepted:.2f} s")
        print(
            f"all 11 counties confirmed at the city: {elapsed:.2f} s"
            f" ({reported} village deliveries reported; goal < 10 s)"
        )
        for server in servers:
            await server.close()


if __name__ == "__main__":
    asyncio.run(main())
