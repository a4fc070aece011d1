"""Real processes: run the ``broadcaster`` command line to its end, wait for another process's
state and call a running server's API with a token (the ``processes`` fixture in
``tests/conftest.py`` kills what a test started)."""

from __future__ import annotations

import json
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
    config.write_text(
        f"""
[server]
port = {port}
data_dir = "{data_dir}"
sender = "city@example.cn"
[registry]
targets = "targets.json"
[dispatcher]
idle_poll_seconds = 0.1
[channels.log]
type = "log"
""",
        encoding="utf-8",
    )
    return config
