"""Deployment subcommands: ``install``, ``backup`` and ``restore``.

::

    broadcaster install [--root DIR] [--user NAME] [--config-from FILE] [--no-user]
    broadcaster backup [--config FILE] [--data-dir DIR] [-o FILE]
    broadcaster restore FILE [--config FILE] [--data-dir DIR] [--force]

``backup`` works while the server runs; ``restore`` refuses while it runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from broadcaster.config import demo_config_path, load_config
from broadcaster.deploy.backup import (
    STORE_FILE,
    StoreSummary,
    backup_database,
    default_backup_path,
    restore_database,
)
from broadcaster.deploy.datadir import PRIVATE_UMASK
from broadcaster.deploy.install import DEFAULT_CONFIG_SOURCE, InstallOptions, install
from broadcaster.errors import DeployError


def _database(args: argparse.Namespace) -> Path:
    """The store file of the data directory given or configured."""
    return _data_dir(args) / STORE_FILE


def _data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir:
        return Path(args.data_dir).resolve()
    config = load_config(Path(args.config) if args.config else demo_config_path())
    if config.store.url is not None:
        raise DeployError(
            "the store is on PostgreSQL ([store] url): back it up with PostgreSQL's own tools"
            " (pg_basebackup, pgBackRest; see docs/deployment-postgresql.md)"
        )
    return config.server.data_dir.resolve()


def _describe(summary: StoreSummary) -> str:
    return (
        f"{summary.path}: schema v{summary.schema_version}, {summary.alerts} alerts,"
        f" {summary.deliveries} deliveries, {summary.size_bytes} bytes"
    )


def cmd_install(args: argparse.Namespace) -> int:
    options = InstallOptions(
        root=Path(args.root).resolve(),
        user=args.user,
        config_source=Path(args.config_from).resolve(),
        create_user=not args.no_user,
    )
    for step in install(options):
        print(step)
    print("next: edit /etc/broadcaster/broadcaster.toml, then")
    print("  broadcaster check-config --config /etc/broadcaster/broadcaster.toml")
    print("  systemctl daemon-reload && systemctl enable --now broadcaster")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    os.umask(PRIVATE_UMASK)  # a backup holds what the store does: readable by its owner only
    database = _database(args)
    dest = Path(args.output) if args.output else default_backup_path(database.parent)
    summary = backup_database(database, dest)
    print(f"backup written: {_describe(summary)}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    os.umask(PRIVATE_UMASK)
    summary = restore_database(Path(args.file), _database(args), force=args.force)
    print(f"restored: {_describe(summary)}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``install``, ``backup`` and ``restore`` to the ``broadcaster`` command."""
    p = subparsers.add_parser("install", help="create the service user, directories and unit")
    p.add_argument("--root", default="/", help="install under this directory (default: /)")
    p.add_argument("--user", default="broadcaster")
    p.add_argument("--config-from", default=str(DEFAULT_CONFIG_SOURCE), help="example to copy")
    p.add_argument("--no-user", action="store_true", help="the user exists or is made otherwise")
    p.set_defaults(func=cmd_install)

    for name, func, helptext in (
        ("backup", cmd_backup, "copy the store while the server runs"),
        ("restore", cmd_restore, "replace the store with a backup (server stopped)"),
    ):
        p = subparsers.add_parser(name, help=helptext)
        if name == "restore":
            p.add_argument("file", help="a file written by broadcaster backup")
            p.add_argument("--force", action="store_true", help="replace an existing store")
        else:
            p.add_argument("-o", "--output", help="backup file (default: <data dir>/backups/)")
        p.add_argument("--config", help="TOML configuration (default: the demo)")
        p.add_argument("--data-dir", help="data directory (default: from the configuration)")
        p.set_defaults(func=func)
