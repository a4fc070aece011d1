"""The bilingual warning that once left the banners' boxes silent, sent to the demo
configuration and registry (config/demo.toml, config/demo/targets.json) with its simulated
loudspeaker boxes and FM encoders: 集宁区, 察哈尔右翼前旗, 察哈尔右翼后旗 and 商都县 get a
Chinese and a traditional-script Mongolian info. Every box and transmitter confirms; the
banners' boxes (zh-CN and mn) play the attention signal and the Chinese warning, and their
deliveries say that Mongolian speech is not available; with a Mongolian recording in the
alert they play both, Chinese first as configured."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from audio import LOUDSPEAKER_PROFILE
from audio.signals import attention_signal
from broadcaster.api.app import make_app
from broadcaster.config import demo_config_path, parse_config
from broadcaster.service import BroadcasterService
from channels.loudspeaker import LoudspeakerChannel
from channels.loudspeaker.commands import alert_key
from drivers.speaker.testing import free_port
from tests.bilingual import alert, recording_at
from tests.core.support import wait_until_complete
from tests.fm.conftest import sink_player

AREAS = {
    "150902": "集宁区",
    "150926": "察哈尔右翼前旗",
    "150928": "察哈尔右翼后旗",
    "150923": "商都县",
}
BANNERS = ("150926", "150928")


def demo_config(
    tmp_path: Path, sink: Path, areas: Iterable[str] = AREAS, boxes_per_area: int | None = None
) -> tuple[Any, list[dict[str, Any]]]:
    """The demo configuration with its loudspeaker and FM channels, the demo registry's boxes
    and transmitters of ``areas`` (the first ``boxes_per_area`` boxes of each, or all), data in
    ``tmp_path`` and FM audio copied to ``sink``."""
    demo = demo_config_path()
    data = tomllib.loads(demo.read_text(encoding="utf-8"))
    registry = json.loads((demo.parent / data["registry"]["targets"]).read_text("utf-8"))
    wanted = set(areas)
    targets = [
        t for t in registry if t["channel"] in ("loudspeaker", "fm") and t["division"][:6] in wanted
    ]
    if boxes_per_area is not None:
        counted: dict[str, int] = {}
        for t in [t for t in targets if t["channel"] == "loudspeaker"]:
            counted[t["division"][:6]] = counted.get(t["division"][:6], 0) + 1
            if counted[t["division"][:6]] > boxes_per_area:
                targets.remove(t)
    (tmp_path / "targets.json").write_text(json.dumps(targets, ensure_ascii=False), "utf-8")
    port = free_port()
    data["server"] |= {
        "data_dir": str(tmp_path / "data"),
        "port": port,
        "public_url": f"http://127.0.0.1:{port}",
    }
    data["registry"] = {
        "divisions": str(demo.parent / data["registry"]["divisions"]),
        "targets": str(tmp_path / "targets.json"),
    }
    data["dispatcher"] |= {"idle_poll_seconds": 0.05, "retry_base_seconds": 0.2}
    data["audio"] = {"engine_order": ["espeak-ng"]}
    channels = data["channels"]
    data["channels"] = {
        "loudspeaker": channels["loudspeaker"] | {"simulated_play_seconds": 0.05},
        "fm": channels["fm"] | {"player": sink_player(sink, 200.0)},
    }
    data.pop("scheduler", None)
    return parse_config(data, base_dir=demo.parent, source=None), targets


async def test_the_bilingual_warning_reaches_every_box_and_transmitter(tmp_path: Path) -> None:
    sink = tmp_path / "sink"
    sink.mkdir()
    config, targets = demo_config(tmp_path, sink)
    banner_boxes = {
        t["id"] for t in targets if t["channel"] == "loudspeaker" and t["division"][:6] in BANNERS
    }
    box_of = {t["id"]: t["address"] for t in targets if t["channel"] == "loudspeaker"}
    boxes = len(box_of)
    assert len(banner_boxes) == 131 and boxes > 300
    service = BroadcasterService(config)
    server = TestServer(make_app(service), host="127.0.0.1", port=config.server.port)
    await server.start_server()
    try:
        channel = service.channels["loudspeaker"]
        assert isinstance(channel, LoudspeakerChannel) and channel.fleet is not None
        await channel.wait_online(list(box_of.values()), 60)
        results = {}
        for name, recorded in (("demo-bilingual", False), ("demo-recorded", True)):
            sent = alert(
                name, "zh+mn", with_recording=recorded, geocodes=[f"{c}000000" for c in AREAS]
            )
            accepted = await service.submit(sent, origin="test")
            summary = await wait_until_complete(service, accepted.alert_id, timeout=240)
            rows = await service.database.run(
                service.outbox.deliveries, accepted.alert_id, limit=5000
            )
            results[name] = (sent, summary, rows)
        fleet_log = channel.fleet.log
    finally:
        await server.close()

    for name, (_, summary, rows) in results.items():
        assert summary == {"fm": {"confirmed": 4}, "loudspeaker": {"confirmed": boxes}}, name
        assert len({r["target_id"] for r in rows if r["channel"] == "loudspeaker"}) == boxes

    sent, _, rows = results["demo-bilingual"]
    warned = {r["target_id"]: r["warning"] for r in rows if r["warning"]}
    assert set(warned) == banner_boxes | {f"fm-{c}" for c in BANNERS}
    assert all(w.startswith("Mongolian speech not available (mn-Mong)") for w in warned.values())
    played = {r.request.box_id: r.request for r in fleet_log.completed(alert_id=alert_key(sent))}
    assert len(played) == boxes and all(p.source == "url" for p in played.values())
    banner_files = {played[box_of[t]].path.name for t in banner_boxes}
    chinese_files = {played[box_of[t]].path.name for t in box_of if t not in banner_boxes}
    assert len(banner_files) == 1 and banner_files == chinese_files, (
        "the banners' boxes play the same programme as the Chinese villages"
    )
    banner_file = played[box_of[min(banner_boxes)]].path
    at, score = recording_at(banner_file, attention_signal(LOUDSPEAKER_PROFILE.attention))
    assert at < 0.1 and score > 0.9, "the programme opens with the attention signal"
    assert recording_at(banner_file)[1] < 0.5

    sent, _, rows = results["demo-recorded"]
    assert not any(r["warning"] for r in rows)
    played = {r.request.box_id: r.request for r in fleet_log.completed(alert_id=alert_key(sent))}
    at, score = recording_at(played[box_of[min(banner_boxes)]].path)
    assert score > 0.9 and at > 15.0, "the Mongolian recording plays after the Chinese warning"
    chinese_box = next(box_of[t] for t in box_of if t not in banner_boxes)
    assert recording_at(played[chinese_box].path)[1] < 0.5, "no Mongolian in Chinese villages"
