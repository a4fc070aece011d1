"""The ``broadcaster user`` and ``broadcaster audit`` commands as real processes: officers are
added with a password from stdin, bad input is one error line, and ``audit verify`` finds an
entry edited in the database file."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from broadcaster.console import cli
from broadcaster.service import DATABASE_NAME


def _run(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broadcaster", *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=data_dir.parent,
        umask=0o022,
    )


def test_the_commands_open_the_servers_database() -> None:
    assert cli.DATABASE_NAME == DATABASE_NAME


def test_user_commands_and_audit_verify(tmp_path: Path) -> None:
    data = tmp_path / "data"
    password = "first admin password"
    done = _run(data, "user", "add", "chief", "--role", "admin", "--password-stdin", stdin=password)
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout + done.stderr
    # the password hash is readable by its owner only, whatever the caller's umask
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()} == {0o600}
    done = _run(data, "user", "add", "ann", "--role", "drafter", "--password-stdin", stdin="short")
    assert done.returncode == 1
    assert done.stderr.strip() == "error: a password needs at least 10 characters"
    assert "Traceback" not in done.stderr
    assert _run(data, "user", "list").stdout.split("\t")[:3] == ["chief", "admin", "enabled"]

    done = _run(data, "audit", "verify")
    assert done.returncode == 0 and "1 entries" in done.stdout
    assert "user.add\tchief" in _run(data, "audit", "show").stdout

    conn = sqlite3.connect(data / DATABASE_NAME)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute('UPDATE audit_log SET detail = \'{"role": "viewer"}\' WHERE seq = 1')
    conn.commit()
    conn.close()
    done = _run(data, "audit", "verify")
    assert done.returncode == 1
    assert "BROKEN at entry 1" in done.stderr and "changed" in done.stderr
