"""A city node and two county nodes as real server processes (``broadcaster serve``, wired by
the demo's writer, delivering on the ``log`` channel): the relay down, the state reported up,
Update and Cancel, a county killed with SIGKILL mid-alert, a county down until expiry and then
long enough for the city to deliver there itself, and the ``broadcaster demo federation``
command itself."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from broadcaster.cap import MsgType
from broadcaster.cap.serialize import to_xml
from broadcaster.federation.demo import (
    FederationLayout,
    NodeLayout,
    start_node,
    wait_answering,
    write_federation,
)
from tests.conftest import REPO
from tests.core.support import make_alert, village_targets
from tests.processes import api, broadcaster, wait_until

ZHUOZI, LIANGCHENG = "150921000000", "150925000000"


def free_ports(count: int) -> int:
    """A base port with ``count`` free loopback ports from it."""
    for base in range(21000 + os.getpid() % 2000 * 7, 60000, 7):
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no free ports")


def _get(node: NodeLayout, path: str) -> Any:
    return api(node.url, path, node.officer_token)


def _status(node: NodeLayout, path: str) -> int:
    try:
        _get(node, path)
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


def _post_json(node: NodeLayout, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        node.url + path,
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {node.officer_token}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _relay_delivery(city: NodeLayout, alert_id: str, state: str) -> dict[str, Any] | None:
    rows = _get(city, f"/api/v1/alerts/{alert_id}/deliveries")["deliveries"]
    assert len(rows) == 1 and rows[0]["channel"] == "relay", "the county's devices are its own"
    return rows[0] if rows[0]["state"] == state else None


def _county_log(county: NodeLayout) -> list[dict[str, Any]]:
    path = county.directory / "data" / "log-log" / "deliveries.jsonl"
    if not path.exists():
        path = county.directory / "data" / "deliveries.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]


def _started(layout: FederationLayout, processes: list[subprocess.Popen[bytes]]) -> None:
    for node in layout.nodes:
        processes.append(start_node(node))
    for node, process in zip(layout.nodes, processes, strict=True):
        wait_answering(node, process, timeout=120)


def test_city_and_counties_relay_report_update_cancel_crash_and_expiry(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    layout = write_federation(tmp_path, free_ports(3), devices="log")
    zhuozi, liangcheng = layout.counties
    # The county's log channel writes 40 a second: a kill lands while its villages are served.
    config = zhuozi.config.read_text(encoding="utf-8")
    zhuozi.config.write_text(config + "rate_per_second = 40\n", encoding="utf-8")
    # The city keeps three devices of its own in 凉城县, for the fallback.
    city = layout.city
    registry = city.directory / "targets.json"
    registry.write_text(json.dumps(village_targets("log", 3, LIANGCHENG)), encoding="utf-8")
    config = city.config.read_text(encoding="utf-8")
    config = config.replace("[registry]\n", f"[registry]\ntargets = {json.dumps(str(registry))}\n")
    config = config.replace(
        '[channels.relay]\ntype = "relay"\n',
        '[channels.relay]\ntype = "relay"\nfallback = "direct"\nfallback_after = "8s"\n',
    )
    city.config.write_text(config + '\n[channels.log]\ntype = "log"\n', encoding="utf-8")
    _started(layout, processes)
    villages = len(json.loads((zhuozi.directory / "targets.json").read_text(encoding="utf-8")))
    assert villages > 80

    # Down: one alert for 卓资县, relayed to that county node only; SIGKILL it mid-alert.
    alert = make_alert("fed-1", sender="ulanqab.emergency@example.cn")
    alert_id = api(city.url, "/api/v1/alerts", city.officer_token, to_xml(alert))["id"]
    assert _status(liangcheng, f"/api/v1/alerts/{alert_id}") == 404

    def serving() -> bool:
        summary = _get(zhuozi, f"/api/v1/alerts/{alert_id}/deliveries?limit=1")["summary"]
        return 10 <= summary.get("log", {}).get("confirmed", 0) < villages

    wait_until(serving, "the county serving its villages", timeout=60)
    processes[1].send_signal(signal.SIGKILL)
    processes[1].wait()
    processes[1] = start_node(zhuozi)
    wait_answering(zhuozi, processes[1], timeout=120)

    # Up: the county reports; the city confirms the relay delivery with the county's summary.
    relay = wait_until(
        lambda: _relay_delivery(city, alert_id, "confirmed"), "relay confirmed", timeout=60
    )
    assert relay["report"]["complete"] is True
    assert relay["report"]["summary"] == {"log": {"confirmed": villages}}
    assert relay["report"]["node"] == "150921"
    county = _get(zhuozi, f"/api/v1/alerts/{alert_id}/deliveries")
    assert county["complete"] and county["summary"] == {"log": {"confirmed": villages}}
    keys = [line["idempotency_key"] for line in _county_log(zhuozi)]
    assert len(set(keys)) == villages
    assert _status(liangcheng, f"/api/v1/alerts/{alert_id}") == 404
    assert _county_log(liangcheng) == []

    # Across the chain: an Update, then a Cancel issued at the city, follow the same path.
    update = make_alert(
        "fed-2",
        sender="ulanqab.emergency@example.cn",
        msg_type=MsgType.UPDATE,
        references=[alert],
        headline="卓资县暴雪红色预警",
    )
    update_id = api(city.url, "/api/v1/alerts", city.officer_token, to_xml(update))["id"]
    wait_until(lambda: _relay_delivery(city, update_id, "confirmed"), "update relayed", timeout=60)
    assert _get(zhuozi, f"/api/v1/alerts/{update_id}")["msg_type"] == "Update"
    cancel_id = _post_json(city, f"/api/v1/alerts/{update_id}/cancel", {"reason": "over"})["id"]
    wait_until(lambda: _relay_delivery(city, cancel_id, "confirmed"), "cancel relayed", timeout=60)
    county_cancel = _get(zhuozi, f"/api/v1/alerts/{cancel_id}")
    assert county_cancel["msg_type"] == "Cancel"
    assert _get(zhuozi, f"/api/v1/alerts/{update_id}")["state"] == "cancelled"

    # A county node down until the alert expires: the city ends the relay delivery expired,
    # with the reason, and shows the node as unreachable meanwhile.
    processes[2].send_signal(signal.SIGKILL)
    processes[2].wait()
    short = make_alert(
        "fed-3", sender="ulanqab.emergency@example.cn", geocodes=(LIANGCHENG,), expires_in=5
    )
    short_id = api(city.url, "/api/v1/alerts", city.officer_token, to_xml(short))["id"]
    health = wait_until(
        lambda: (
            _get(city, "/healthz")["channels"]["relay"]["devices"]["凉城县"]["state"]
            == "unreachable"
        ),
        "the county shown unreachable",
        timeout=60,
    )
    assert health
    expired = wait_until(
        lambda: _relay_delivery(city, short_id, "expired"), "relay expired", timeout=60
    )
    assert "unreachable" in expired["last_error"]

    # Still down after fallback_after: the city delivers to its own devices there itself.
    late = make_alert("fed-4", sender="ulanqab.emergency@example.cn", geocodes=(LIANGCHENG,))
    late_id = api(city.url, "/api/v1/alerts", city.officer_token, to_xml(late))["id"]

    def fallen_back() -> list[dict[str, Any]] | None:
        rows = _get(city, f"/api/v1/alerts/{late_id}/deliveries")["deliveries"]
        logs = [r for r in rows if r["channel"] == "log" and r["state"] == "confirmed"]
        return rows if len(logs) == 3 else None

    rows = wait_until(fallen_back, "the city delivering itself", timeout=60)
    relay = next(r for r in rows if r["channel"] == "relay")
    assert relay["state"] == "failed"
    assert "delivers to the county's devices itself (log 3)" in relay["last_error"]


def test_demo_federation_starts_answers_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    base = free_ports(3)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "broadcaster",
            "demo",
            "federation",
            "--base-port",
            str(base),
            "--data-dir",
            str(tmp_path / "fed"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while "Ctrl-C stops all three." not in lines and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else ""
            lines.append(line.rstrip("\n"))
        text = "\n".join(lines)
        tokens = [line.split(": ", 1)[1] for line in lines if "API token:" in line]
        assert len(tokens) == 3, text
        labels = ("乌兰察布市", "卓资县", "凉城县")
        for offset, token, label in zip(range(3), tokens, labels, strict=True):
            url = f"http://127.0.0.1:{base + offset}"
            assert f"{label} (" in text and f"{url}/console/" in text
            health = api(url, "/healthz", token)
            assert health["status"] == "ok", health
        city = f"http://127.0.0.1:{base}"
        city_health = api(city, "/healthz", tokens[0])
        assert set(city_health["channels"]["relay"]["devices"]) == {"卓资县", "凉城县"}
        # The documented walk-through: the sample alert to the city, confirmed by 卓资县.
        sample = str(REPO / "config" / "demo" / "federation-alert.xml")
        sent = broadcaster("send", "--url", city, "--token", tokens[0], sample)
        assert sent.returncode == 0, sent.stderr
        alert_id = json.loads(sent.stdout)["id"]

        def confirmed() -> dict[str, Any] | None:
            body = api(city, f"/api/v1/alerts/{alert_id}/deliveries", tokens[0])
            return body if body["summary"] == {"relay": {"confirmed": 1}} else None

        report = wait_until(confirmed, "卓资县 confirming", timeout=60)["deliveries"][0]["report"]
        assert set(report["summary"]) == {"log", "loudspeaker", "sms"}, report
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        for offset in range(3):
            with socket.socket() as s:
                assert s.connect_ex(("127.0.0.1", base + offset)) != 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
