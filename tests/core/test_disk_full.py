"""A full disk under a real server: its data directory is a small tmpfs in a mount namespace of
its own (``unshare``, no root needed), filled by a file written until ``ENOSPC``. Intake answers
503 and stores nothing, ``/healthz`` says "degraded: disk full", and both recover by themselves
once the file is removed; deliveries that fell due while it was full go out then."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from broadcaster.cap import format_cap_time
from broadcaster.cap.serialize import to_xml
from broadcaster.intake import alert_id_for
from drivers.mqtt.testing import free_port
from tests.conftest import REPO
from tests.core.support import make_alert
from tests.processes import serve_argv, wait_http, wait_until, write_log_server_config

MOUNT_AND_SERVE = 'mount -t tmpfs -o size=16m tmpfs "$1" && shift && exec "$@"'
UNSHARE = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", MOUNT_AND_SERVE, "sh"]
"""Run a command with a fresh 16 MiB tmpfs on the folder given first, seen only by it."""


def _fill(path: Path) -> int:
    """Write ``path`` until the filesystem refuses; the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    total = 0
    try:
        for size in (1 << 20, 1 << 12, 1):
            block = bytes(size)
            while True:
                try:
                    total += os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return total


def _call(url: str, token: str, data: bytes | None = None) -> tuple[int, dict[str, Any], str]:
    """Status, JSON body and Retry-After of one request, whatever its status."""
    request = urllib.request.Request(
        url,
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/cap+xml"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), ""
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers.get("Retry-After", "")


@pytest.mark.slow
def test_full_disk_refuses_alerts_clearly_and_recovers_by_itself(tmp_path: Path, processes) -> None:  # type: ignore[no-untyped-def]
    data, port = tmp_path / "data", free_port()
    data.mkdir()
    config = write_log_server_config(tmp_path, port=port, data_dir=data)
    server = subprocess.Popen(
        [*UNSHARE, str(data), *serve_argv(config)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    processes.append(server)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz")
    seen = Path(f"/proc/{server.pid}/root") / data.relative_to("/")  # the server's tmpfs
    token = (seen / "api-token").read_text().strip()
    assert _call(base + "/healthz", token)[1]["status"] == "ok"

    due_later = make_alert("disk-full-due-later", effective_in=3)
    status, stored, _ = _call(base + "/api/v1/alerts", token, to_xml(due_later))
    assert status == 201
    alert = make_alert("disk-full-1")
    alert_id = alert_id_for(alert.sender, alert.identifier, format_cap_time(alert.sent))
    filler = seen / "filler"
    assert _fill(filler) > 8 << 20
    status, body, retry_after = _call(base + "/api/v1/alerts", token, to_xml(alert))
    assert (status, body) == (503, {"error": "disk full: the alert was not stored"})
    assert retry_after == "60"
    assert _call(f"{base}/api/v1/alerts/{alert_id}", token, None)[0] == 404  # nothing stored
    health = _call(base + "/healthz", token)[1]
    assert health["status"] == "degraded: disk full"
    assert health["disk"]["ok"] is False
    with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
        assert "\nbroadcaster_disk_full 1\n" in response.read().decode()

    # the stored alert falls due while the disk is full: its deliveries cannot be claimed
    time.sleep(max(0.0, due_later.infos[0].effective.timestamp() + 2 - time.time()))  # type: ignore[union-attr]
    filler.unlink()
    wait_until(lambda: _call(base + "/healthz", token)[1]["status"] == "ok", "healthz ok again")
    status, body, _ = _call(base + "/api/v1/alerts", token, to_xml(alert))
    assert (status, body["id"], body["planned"]) == (201, alert_id, {"log": 3})
    deliveries = wait_until(
        lambda: (
            (b := _call(f"{base}/api/v1/alerts/{alert_id}/deliveries", token)[1])["complete"] and b
        ),
        "the alert delivered after the disk was freed",
    )
    assert deliveries["summary"] == {"log": {"confirmed": 3}}
    later = _call(f"{base}/api/v1/alerts/{stored['id']}/deliveries", token)[1]
    assert later["complete"] and later["summary"] == {"log": {"confirmed": 3}}
