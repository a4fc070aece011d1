"""Keeping the data directory private: what the server writes there is readable by its user only.

The data directory holds officers' password hashes, API and subscriber keys, acknowledgement
secrets and every alert. ``broadcaster serve`` therefore sets the process umask to ``0o077``
(:data:`PRIVATE_UMASK`) before it creates anything, so new files are ``0600`` and new folders
``0700`` whoever starts it, and :func:`make_private` takes group and other access away from
what an earlier run (or an earlier version) left behind. SQLite gives a database's ``-wal`` and
``-shm`` files the mode of the database itself, so the database must be private before it is
opened. Files owned by another user are reported, since the server cannot vouch for who else
can change them.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600
_OPEN_BITS = 0o077


@dataclass(slots=True)
class PrivacyReport:
    """What :func:`make_private` changed and what it could not vouch for."""

    tightened: list[Path] = field(default_factory=list)
    foreign: list[tuple[Path, int]] = field(default_factory=list)
    """(path, owner uid) of entries another user owns."""
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _tighten(
    path: Path, info: os.stat_result, mode: int, owner: int, report: PrivacyReport
) -> None:
    if info.st_uid != owner:
        report.foreign.append((path, info.st_uid))
    if stat.S_IMODE(info.st_mode) & _OPEN_BITS == 0:
        return
    try:
        os.chmod(path, stat.S_IMODE(info.st_mode) & mode, follow_symlinks=False)
    except OSError as exc:
        report.failed.append((path, exc.strerror or str(exc)))
        return
    report.tightened.append(path)


def make_private(data_dir: Path, *, owner: int | None = None) -> PrivacyReport:
    """Remove group and other access from ``data_dir`` and everything in it, and log it.

    Folders keep at most ``0700``, files at most ``0600``; symbolic links are neither followed
    nor changed. ``owner`` is the user expected to own it all (default: this process's).
    """
    expected = os.geteuid() if owner is None else owner
    report = PrivacyReport()
    _tighten(data_dir, data_dir.stat(), DIR_MODE, expected, report)
    for root, dirs, files in os.walk(data_dir):
        base = Path(root)
        for name in dirs + files:
            path = base / name
            try:
                info = path.lstat()
            except FileNotFoundError:  # removed while we walked (a SQLite -wal, a render)
                continue
            if stat.S_ISDIR(info.st_mode):
                _tighten(path, info, DIR_MODE, expected, report)
            elif stat.S_ISREG(info.st_mode):
                _tighten(path, info, FILE_MODE, expected, report)
    _log_report(data_dir, report)
    return report


def _some(paths: list[str]) -> str:
    shown = ", ".join(paths[:5])
    return shown + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")


def _log_report(data_dir: Path, report: PrivacyReport) -> None:
    if report.tightened:
        log.warning(
            "%s: removed group and other access from %d entries: %s",
            data_dir,
            len(report.tightened),
            _some([str(p) for p in report.tightened]),
        )
    if report.foreign:
        log.warning(
            "%s: %d entries are owned by another user, who can read or change them: %s",
            data_dir,
            len(report.foreign),
            _some([f"{p} (uid {uid})" for p, uid in report.foreign]),
        )
    for path, reason in report.failed:
        log.warning("%s: cannot make it private: %s", path, reason)
