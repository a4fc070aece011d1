"""Real processes: run the ``broadcaster`` command line to its end, wait for another process's
state, call a running server's API with a token, and write, start and restart a server whose
configuration differs only in its channels (``ServeProcess``, for the crash tests; the
``processes`` fixture in ``tests/conftest.py`` kills what a test started)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def broadcaster(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m broadcaster ARGS`` in the repository; its output is captured as text."""
    from tests.conftest import REPO

    return subprocess.run(
        [sys.executable, "-m", "broadcaster", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def wait_until(check: Callable[[], T], what: str, timeout: float = 20) -> T:
    """Poll another process's state (an HTTP answer, its database file) until ``check`` gives
    something true; connection and database errors count as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except (OSError, sqlite3.Error):  # the other process is not there yet
            found = None
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what} never happened")


def wait_http(url: str, timeout: float = 20) -> None:
    """Wait until ``url`` answers."""
    wait_until(lambda: urllib.request.urlopen(url, timeout=1), f"{url} answering", timeout)


def api(base: str, path: str, token: str, data: bytes | None = None) -> Any:
    """GET (or, with ``data``, POST a CAP document to) a server's API; the parsed answer."""
    request = urllib.request.Request(
        base + path,
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/cap+xml"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def serve_argv(config: Path) -> list[str]:
    """The command line of ``broadcaster serve`` on ``config``, run from this interpreter."""
    return [sys.executable, "-m", "broadcaster", "serve", "--config", str(config)]


def write_log_server_config(
    directory: Path, *, port: int, data_dir: Path, targets: int = 3
) -> Path:
    """A server configuration with one ``log`` channel reaching ``targets`` villages, no API
    token (the server generates ``api-token``) and fast dispatching; returns its path."""
    from tests.core.support import village_targets

    (directory / "targets.json").write_text(json.dumps(village_targets("log", targets)))
    config = directory / "server.toml"
    header = server_header(port=port, data_dir=data_dir, idle_poll_seconds=0.1)
    config.write_text(f'{header}[channels.log]\ntype = "log"\n', encoding="utf-8")
    return config


def server_header(
    *, port: int, data_dir: Path, idle_poll_seconds: float, token: str | None = None
) -> str:
    """The configuration every test server shares, before its channel tables: its port and
    data directory, ``targets.json`` beside the configuration, how often the dispatcher looks
    for due deliveries, and an API token named ``ci`` when ``token`` is given."""
    tokens = f'[[api.tokens]]\nname = "ci"\ntoken = "{token}"\n' if token else ""
    return f"""
[server]
port = {port}
data_dir = "{data_dir}"
sender = "city@example.cn"
[registry]
targets = "targets.json"
[dispatcher]
idle_poll_seconds = {idle_poll_seconds}
{tokens}"""


class ServeProcess:
    """A ``broadcaster serve`` on a configuration in ``directory`` made of the shared header
    (a free port, ``directory/data``, the API token ``token``, a 50 ms dispatcher poll), the
    ``targets`` and the ``channels`` tables (TOML); started again on the same configuration
    after a crash."""

    def __init__(
        self, directory: Path, targets: list[dict[str, Any]], channels: str, token: str
    ) -> None:
        from drivers.mqtt.testing import free_port

        port = free_port()
        self.data_dir = directory / "data"
        self.base = f"http://127.0.0.1:{port}"
        self.token = token
        (directory / "targets.json").write_text(
            json.dumps(targets, ensure_ascii=False), encoding="utf-8"
        )
        config = directory / "config.toml"
        header = server_header(
            port=port, data_dir=self.data_dir, idle_poll_seconds=0.05, token=token
        )
        config.write_text(header + channels, encoding="utf-8")
        self._argv = serve_argv(config)

    def start(self) -> subprocess.Popen[bytes]:
        """Start the server and wait until it answers."""
        from tests.conftest import REPO

        env = {**os.environ, "PYTHONPATH": str(REPO)}
        process = subprocess.Popen(self._argv, cwd=REPO, env=env)
        wait_http(self.base + "/healthz")
        return process

    def completed(self, alert_id: str, timeout: float) -> Any:
        """The deliveries of ``alert_id`` once every one is settled."""
        path = f"/api/v1/alerts/{alert_id}/deliveries"
        return wait_until(
            lambda: (b := api(self.base, path, self.token))["complete"] and b,
            "completion",
            timeout,
        )
