"""The data directory is private whoever starts the server, and one server owns it: real server
processes started under a permissive umask on a directory an earlier run left world-readable,
and a second server started on a live directory."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from broadcaster.cap.serialize import to_xml
from broadcaster.deploy.datadir import make_private
from drivers.mqtt.testing import free_port
from tests.conftest import REPO
from tests.core.support import make_alert
from tests.processes import api, serve_argv, wait_http, wait_until, write_log_server_config


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _world_readable_leftovers(data: Path) -> None:
    """What an earlier run under umask 022 left: an open folder, a store, an SMS record."""
    data.mkdir(mode=0o755)
    (data / "sms-town").mkdir(mode=0o755)
    for db in (data / "broadcaster.db", data / "sms-town" / "submissions.sqlite3"):
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.close()
        db.chmod(0o644)
    (data / "sms-town").chmod(0o755)
    data.chmod(0o755)


def _start(
    config: Path, processes: list[subprocess.Popen[bytes]], **env: str
) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        serve_argv(config),
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        umask=0o022,
    )
    processes.append(server)
    return server


@pytest.mark.slow
def test_server_under_open_umask_keeps_data_private(tmp_path: Path, processes) -> None:  # type: ignore[no-untyped-def]
    data, port = tmp_path / "data", free_port()
    _world_readable_leftovers(data)
    config = write_log_server_config(tmp_path, port=port, data_dir=data)
    server = _start(config, processes)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz")
    token = (data / "api-token").read_text().strip()
    alert_id = api(base, "/api/v1/alerts", token, to_xml(make_alert("private-1")))["id"]
    wait_until(
        lambda: api(base, f"/api/v1/alerts/{alert_id}/deliveries", token)["complete"],
        "the alert delivered",
    )
    names = {p.relative_to(data).as_posix() for p in data.rglob("*")}
    # the store's WAL files, the generated token, the log channel's file: all written now
    for written in ("broadcaster.db-wal", "broadcaster.db-shm", "api-token", "deliveries.jsonl"):
        assert written in names
    assert _mode(data) == 0o700
    for path in data.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert _mode(path) == expected, f"{path.relative_to(data)}: {oct(_mode(path))}"
    server.terminate()
    _out, err = server.communicate(timeout=20)
    assert "removed group and other access from 4 entries" in err.decode()


def test_entries_of_another_user_are_reported_and_links_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    outside.chmod(0o644)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "link").symlink_to(outside)
    (data / "token").write_text("x")
    (data / "token").chmod(0o640)
    with caplog.at_level(logging.WARNING, "broadcaster.deploy.datadir"):
        report = make_private(data, owner=os.geteuid() + 1)
    assert _mode(outside) == 0o644  # the link was not followed
    assert _mode(data / "token") == 0o600
    assert report.tightened == [data / "token"]
    assert {p for p, _uid in report.foreign} == {data, data / "token"}
    assert "2 entries are owned by another user" in caplog.text


@pytest.mark.slow
def test_second_server_refuses_before_printing_or_writing(tmp_path: Path, processes) -> None:  # type: ignore[no-untyped-def]
    data, port = tmp_path / "data", free_port()
    config = write_log_server_config(tmp_path, port=port, data_dir=data)
    first = _start(config, processes, BROADCASTER_API_TOKEN="first-server-token")
    wait_http(f"http://127.0.0.1:{port}/healthz")
    before = sorted(p.name for p in data.iterdir())

    second = subprocess.run(
        serve_argv(config),
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != "BROADCASTER_API_TOKEN"}
        | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert second.stdout == ""
    assert (
        f"server.data_dir: a server is running on {data}"
        " (stop it first: systemctl stop broadcaster)"
    ) in second.stderr
    assert "Traceback" not in second.stderr
    assert not (data / "api-token").exists()
    assert sorted(p.name for p in data.iterdir()) == before
    assert first.poll() is None
    wait_http(f"http://127.0.0.1:{port}/healthz")
