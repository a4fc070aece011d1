"""A channel plugin's bugs stay its own: an exception outside the documented tree raised by its
import, constructor, endpoints, start, plan, send, cancel, probe, preview, health, housekeeping,
resume or confirmation stream is recorded as that plugin's failure or fault (log, /healthz,
/metrics, ``broadcaster channels``), the other channels deliver, and a send that raises every
time is retried with backoff, never hot."""

from __future__ import annotations

import asyncio
import builtins
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.cli import main
from broadcaster.console.preview import build_preview
from broadcaster.faults import describe
from broadcaster.service import BroadcasterService
from tests.core.faulty import FaultyChannel
from tests.core.support import (
    RecordingChannel,
    make_alert,
    make_config,
    village_targets,
    wait_for_deliveries,
)

RUNNING_POINTS = (
    "plan",
    "send",
    "cancel",
    "probe",
    "preview",
    "health",
    "housekeeping",
    "resume",
    "confirmations",
)
SETUP_POINTS = ("init", "web_app", "start")
FAULTY = "tests.core.faulty:FaultyChannel"


def _channels(error: str) -> dict[str, dict[str, Any]]:
    channels: dict[str, dict[str, Any]] = {
        "good": {"type": "tests.core.support:RecordingChannel"},
        "bad-import": {"type": "tests.core.faulty_import:Nothing"},
    }
    for point in SETUP_POINTS + RUNNING_POINTS:
        channels[f"bad-{point}"] = {"type": FAULTY, "fail_at": [point], "error": error}
    return channels


def _targets() -> list[dict[str, Any]]:
    targets = village_targets("good", 3)
    for point in RUNNING_POINTS:
        targets += village_targets(f"bad-{point}", 2)
    return targets


async def _eventually(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("error", ["ValueError", "RuntimeError", "KeyError"])
async def test_a_plugin_raising_anywhere_stops_no_other_channel(tmp_path: Path, error: str) -> None:
    RecordingChannel.sent.clear()
    FaultyChannel.sent.clear()
    FaultyChannel.attempts.clear()
    service = BroadcasterService(make_config(tmp_path, _channels(error), _targets()))
    server = TestServer(make_app(service))
    await server.start_server()
    try:
        failed = {f.channel: f.error for f in service.failures}
        assert set(failed) == {"bad-import", "bad-init", "bad-web_app", "bad-start"}
        assert "RuntimeError: this plugin's module is broken" in failed["bad-import"]
        for point in SETUP_POINTS:
            assert f"{error}: " in failed[f"bad-{point}"] and point in failed[f"bad-{point}"]
        assert set(service.channels) == {"good", *(f"bad-{p}" for p in RUNNING_POINTS)}

        result = await service.submit(make_alert("iso-1"), origin="test")
        # A plan that raises falls back to one delivery per target in the area.
        assert result.planned == {"good": 3} | {f"bad-{p}": 2 for p in RUNNING_POINTS}
        rows = await wait_for_deliveries(
            service,
            result.alert_id,
            lambda rows: (
                all(
                    r["state"] == "confirmed"
                    for r in rows
                    if r["channel"] not in ("bad-send", "bad-cancel")
                )
                and all(r["state"] == "accepted" for r in rows if r["channel"] == "bad-cancel")
            ),
        )
        assert sorted(d.target.id for d in RecordingChannel.sent) == sorted(
            t["id"] for t in village_targets("good", 3)
        )
        # A send that raises every time: retried with backoff, the error kept on the delivery.
        started = time.monotonic()
        await asyncio.sleep(1.0)
        rows = await service.database.run(service.outbox.deliveries, result.alert_id)
        broken = [r for r in rows if r["channel"] == "bad-send"]
        # never final: queued for the next attempt (or being sent again right now)
        assert {r["state"] for r in broken} <= {"queued", "sending"} and len(broken) == 2
        assert all(f"channel bug: {error}: " in (r["last_error"] or "") for r in broken)
        elapsed = time.monotonic() - started
        # retry_base 0.05 s, retry_max 0.2 s: at most one attempt per 0.1 s per delivery
        assert 2 <= FaultyChannel.attempts["bad-send"] <= 2 * (elapsed + 0.5) / 0.1

        # A Cancel reaches a channel whose cancel raises; the others are unaffected.
        cancel = await service.cancel(result.alert_id, reason="over", origin="test")
        assert cancel.state == "active"

        probed = await service.operations.linkcheck.check_channel("bad-probe")
        assert not any(r.ok for k, r in probed.items() if k != "*")
        assert all(f"probe failed: {error}" in r.detail for k, r in probed.items() if k != "*")
        shown = await build_preview(service, make_alert("iso-2"), ["good", "bad-preview"])
        assert shown["channels"]["good"]["contents"]
        raised = getattr(builtins, error)("bad-preview broke in preview")
        assert shown["channels"]["bad-preview"]["notes"] == [
            f"this channel could not make a preview: {describe(raised)}"
        ]

        faults: set[tuple[str, str]] = set()

        def every_fault_recorded() -> bool:
            faults.clear()
            faults.update((f.channel, f.point) for f in service.faults.all())
            return faults >= {(f"bad-{p}", p) for p in RUNNING_POINTS if p != "health"}

        await _eventually(every_fault_recorded)
        token = (service.data_dir / "api-token").read_text().strip()
        details = {"Authorization": f"Bearer {token}"}  # /healthz details are for API clients
        async with (
            aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session,
            session.get("/healthz", headers=details) as r,
        ):
            health = await r.json()
            async with session.get("/metrics") as m:
                metrics = await m.text()
        assert health["status"] == "degraded"
        assert health["channels"]["good"]["ok"] is True
        assert health["channels"]["bad-health"] == {
            "ok": False,
            "detail": health["channels"]["bad-health"]["detail"],
            "devices": {},
        }
        assert f"health check failed: {error}: " in health["channels"]["bad-health"]["detail"]
        assert {f["channel"] for f in health["failed_channels"]} == set(failed)
        listed = {(f["channel"], f["point"]): f for f in health["channel_faults"]}
        assert set(listed) >= {(f"bad-{p}", p) for p in RUNNING_POINTS}
        assert all(f["error"].startswith(f"{error}: ") for f in listed.values())
        assert listed[("bad-send", "send")]["count"] >= 2
        assert 'broadcaster_channel_up{channel="bad-start"} 0' in metrics
        assert 'broadcaster_channel_up{channel="good"} 1' in metrics
        assert 'broadcaster_channel_faults_total{channel="bad-send",point="send"} ' in metrics
        # Still delivering after all of it.
        later = await service.submit(make_alert("iso-3"), origin="test")
        await wait_for_deliveries(
            service,
            later.alert_id,
            lambda rows: all(r["state"] == "confirmed" for r in rows if r["channel"] == "good"),
        )
    finally:
        await server.close()


def test_broadcaster_channels_names_each_broken_channel_of_a_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "broadcaster.toml"
    config.write_text(
        f"""
[server]
data_dir = "{tmp_path / "data"}"

[channels.good]
type = "tests.core.support:RecordingChannel"

[channels.bad-import]
type = "tests.core.faulty_import:Nothing"

[channels.bad-init]
type = "{FAULTY}"
fail_at = ["init"]
error = "KeyError"

[channels.bad-start]
type = "{FAULTY}"
fail_at = ["start"]
""",
        encoding="utf-8",
    )
    assert main(["channels", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    lines = out[out.index("channels of") :].splitlines()
    assert lines[1:] == [
        "  good (tests.core.support:RecordingChannel): ok",
        "  bad-import (tests.core.faulty_import:Nothing): BROKEN: channel plugin"
        " 'tests.core.faulty_import:Nothing' failed to import: RuntimeError:"
        " this plugin's module is broken",
        f"  bad-init ({FAULTY}): BROKEN: channel plugin '{FAULTY}' failed to initialise:"
        " KeyError: 'bad-init broke in init'",
        f"  bad-start ({FAULTY}): ok",  # start() runs only in the server
    ]


async def test_a_channel_whose_start_hangs_is_reported_and_the_others_deliver(
    tmp_path: Path,
) -> None:
    RecordingChannel.sent.clear()
    channels = {
        "good": {"type": "tests.core.support:RecordingChannel"},
        "stuck": {"type": FAULTY, "fail_at": ["hang-start"], "start_timeout_seconds": 0.3},
    }
    targets = village_targets("good", 2) + village_targets("stuck", 2)
    service = BroadcasterService(make_config(tmp_path, channels, targets))
    server = TestServer(make_app(service))
    started = time.monotonic()
    await server.start_server()
    try:
        assert time.monotonic() - started < 10
        failed = {f.channel: f.error for f in service.failures}
        assert failed == {"stuck": "did not start within 0.3 s"}
        assert set(service.channels) == {"good"}
        result = await service.submit(make_alert("hang-1"), origin="test")
        assert result.planned == {"good": 2}
        await wait_for_deliveries(
            service, result.alert_id, lambda rows: all(r["state"] == "confirmed" for r in rows)
        )
    finally:
        await server.close()
