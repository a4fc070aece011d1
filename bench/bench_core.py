"""Core throughput: one alert to 10,000 targets through the ``log`` channel, and CAP intake.

Run: ``scripts/run bench`` (every benchmark), or this one alone with
``PYTHONPATH=. .venv/bin/python bench/bench_core.py``.

Prints:
- plan: time from submitting the alert until intake answers, i.e. every delivery is on disk;
- confirm: time from that answer until all deliveries are confirmed (the log channel fsyncs);
- intake: documents per second for parse + validate + store of distinct alerts, beside plain
  lxml XMLSchema validation of the same documents in the same run, and their ratio.
Goals on a 2-core machine: plan < 1 s, confirm < 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from lxml import etree

from broadcaster.cap.serialize import to_xml
from broadcaster.config import parse_config
from broadcaster.service import BroadcasterService
from tests.conftest import CAP_DATA
from tests.core.support import make_alert, village_targets


async def fan_out(workdir: Path, targets: int) -> tuple[float, float]:
    registry = workdir / "targets.json"
    registry.write_text(json.dumps(village_targets("log", targets)), encoding="utf-8")
    config = parse_config(
        {
            "server": {"data_dir": str(workdir / "data")},
            "registry": {"targets": str(registry)},
            "dispatcher": {"batch_size": 2000, "idle_poll_seconds": 0.05},
            "channels": {"log": {"type": "log", "concurrency": 2000}},
        },
        base_dir=workdir,
        source=None,
    )
    service = BroadcasterService(config)
    await service.start()
    try:
        xml = to_xml(make_alert("bench-fan-out"))
        started = time.perf_counter()
        result = await service.submit(xml, origin="bench")
        planned = time.perf_counter()
        assert result.planned == {"log": targets}, result.planned
        while True:
            summary = await service.database.run(service.outbox.summary, result.alert_id)
            if summary.get("log", {}).get("confirmed", 0) == targets:
                break
            await asyncio.sleep(0.02)
        confirmed = time.perf_counter()
    finally:
        await service.stop()
    return planned - started, confirmed - planned


async def intake_rate(workdir: Path, documents: list[bytes]) -> float:
    config = parse_config(
        {"server": {"data_dir": str(workdir / "intake")}}, base_dir=workdir, source=None
    )
    service = BroadcasterService(config)
    await service.start()
    try:
        started = time.perf_counter()
        for document in documents:
            await service.submit(document, origin="bench")
        return len(documents) / (time.perf_counter() - started)
    finally:
        await service.stop()


def xsd_rate(documents: list[bytes]) -> float:
    schema = etree.XMLSchema(etree.parse(str(CAP_DATA / "CAP-v1.2.xsd")))
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    started = time.perf_counter()
    for document in documents:
        schema.validate(etree.fromstring(document, parser))
    return len(documents) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--documents", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        plan_s, confirm_s = asyncio.run(fan_out(workdir, args.targets))
        print(f"fan-out to {args.targets} targets via log channel:")
        print(f"  plan (all deliveries on disk): {plan_s:.3f} s   (goal < 1 s)")
        print(f"  confirm (all confirmed):       {confirm_s:.3f} s   (goal < 5 s)")
        documents = [
            to_xml(make_alert(f"bench-intake-{n}", sender="intake@example.cn"))
            for n in range(args.documents)
        ]
        stored = asyncio.run(intake_rate(workdir, documents))
        plain = xsd_rate(documents)
        print(f"CAP intake of {args.documents} distinct alerts:")
        print(f"  parse + validate + store: {stored:8.0f} docs/s")
        print(f"  plain lxml XSD validation: {plain:8.0f} docs/s")
        print(f"  ratio intake / XSD:        {stored / plain:8.3f}")


if __name__ == "__main__":
    main()
