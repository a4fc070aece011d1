"""``broadcaster backup`` while alerts are being written, and ``restore`` of that backup into a
consistent store; restore refuses under a running server and keeps what it replaces."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import sys
from pathlib import Path

from broadcaster.deploy.backup import STORE_FILE, data_dir_lock
from broadcaster.service import DATABASE_NAME
from broadcaster.store.db import schema_files
from tests.conftest import REPO
from tests.core.support import make_alert, make_config, running, village_targets

TARGETS = 40


async def broadcaster(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broadcaster",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        umask=0o022,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def consistency(path: Path) -> tuple[int, list[int]]:
    """Alerts in the store and, per alert, its deliveries (all must be planned together)."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(schema_files())
        counts = [
            n
            for (n,) in conn.execute(
                "SELECT count(d.id) FROM alerts a LEFT JOIN deliveries d ON d.alert_id = a.id"
                " GROUP BY a.id"
            )
        ]
        orphans = conn.execute(
            "SELECT count(*) FROM delivery_events e LEFT JOIN deliveries d"
            " ON d.id = e.delivery_id WHERE d.id IS NULL"
        ).fetchone()[0]
        assert orphans == 0
        return len(counts), counts
    finally:
        conn.close()


async def test_backup_while_writing_restores_to_a_consistent_store(tmp_path: Path) -> None:
    channels = {"log": {"type": "log", "fsync": False}}
    config = make_config(tmp_path, channels, village_targets("log", TARGETS))
    data_dir = tmp_path / "data"
    backup = tmp_path / "backup.db"
    written = 0
    async with running(config) as service:
        stop = asyncio.Event()
        warmed_up = asyncio.Event()

        async def write_alerts() -> None:
            nonlocal written
            while not stop.is_set():
                await service.submit(make_alert(f"load-{written}"), origin="test")
                written += 1
                if written == 5:
                    warmed_up.set()

        writer = asyncio.create_task(write_alerts())
        try:
            await asyncio.wait_for(warmed_up.wait(), timeout=30)
            before = written
            code, out, err = await broadcaster(
                "backup", "--data-dir", str(data_dir), "-o", str(backup)
            )
            during = written - before
        finally:
            stop.set()
            await writer
    assert code == 0, err
    assert during > 0  # alerts were being written while the backup ran
    assert "backup written" in out and not backup.with_name("backup.db.partial").exists()
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600  # as private as the store

    restored_dir = tmp_path / "restored"
    code, out, err = await broadcaster("restore", str(backup), "--data-dir", str(restored_dir))
    assert code == 0, err
    alerts, per_alert = consistency(restored_dir / "broadcaster.db")
    assert 5 <= alerts <= written
    assert set(per_alert) == {TARGETS}  # every alert with all its deliveries, none half-stored


async def test_restore_refuses_under_a_running_server_and_keeps_the_old_store(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, {"log": {"type": "log"}}, village_targets("log", 3))
    data_dir = tmp_path / "data"
    async with running(config) as service:
        await service.submit(make_alert("kept"), origin="test")
    backup = tmp_path / "one.db"
    assert (await broadcaster("backup", "--data-dir", str(data_dir), "-o", str(backup)))[0] == 0
    async with running(config) as service:
        await service.submit(make_alert("after-backup"), origin="test")

    with data_dir_lock(data_dir, purpose="serve"):
        code, _, err = await broadcaster("restore", str(backup), "--data-dir", str(data_dir))
    assert code == 1 and "exists; use --force" in err
    with data_dir_lock(data_dir, purpose="serve"):
        code, _, err = await broadcaster(
            "restore", str(backup), "--data-dir", str(data_dir), "--force"
        )
    assert code == 1 and "a server is running" in err and "Traceback" not in err
    assert consistency(data_dir / "broadcaster.db")[0] == 2  # unchanged

    code, _, err = await broadcaster("restore", str(backup), "--data-dir", str(data_dir), "--force")
    assert code == 0, err
    assert consistency(data_dir / "broadcaster.db")[0] == 1
    (kept,) = data_dir.glob("broadcaster.db.before-restore-*")
    assert consistency(kept)[0] == 2


async def test_restore_rejects_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"SQLite format 3\x00" + b"\xff" * 2000)
    code, _, err = await broadcaster("restore", str(garbage), "--data-dir", str(tmp_path / "d"))
    assert code == 1 and "garbage.db" in err and "Traceback" not in err
    assert not (tmp_path / "d" / "broadcaster.db").exists()
    code, _, err = await broadcaster("backup", "--data-dir", str(tmp_path / "empty"))
    assert code == 1 and "no database" in err


def test_the_command_line_finds_the_store_the_service_writes() -> None:
    assert STORE_FILE == DATABASE_NAME
