"""Console commands: officers and the audit log, run against the server's data directory.

::

    broadcaster user add NAME --role admin|approver|drafter|viewer [--name "显示名"]
    broadcaster user passwd NAME
    broadcaster user set NAME [--role R] [--enable | --disable] [--unlock]
    broadcaster user list
    broadcaster audit verify
    broadcaster audit show [--limit N] [--action PREFIX]

Each takes ``--config FILE`` (default: the demo) and ``--data-dir DIR`` (default: from the
configuration). Passwords are read from the terminal without echo (twice), or as one line from
standard input with ``--password-stdin``; never from the command line, where other users and
the shell history would see them. Every change is written to the audit log as ``cli``.
``audit verify`` exits 1 when the chain is broken and prints the head hash to keep elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from broadcaster.audit import AuditLog
from broadcaster.auth import AccountError, OfficerStore, Role
from broadcaster.config import Config, demo_config_path, load_config
from broadcaster.deploy.datadir import PRIVATE_UMASK
from broadcaster.store.db import Database, open_database

T = TypeVar("T")
ACTOR = "cli"
DATABASE_NAME = "broadcaster.db"
"""The server's database file (``broadcaster.service.DATABASE_NAME``; not imported from there,
which would load the whole server and its audio stack for a one-line command)."""


def _config(args: argparse.Namespace) -> Config:
    return load_config(Path(args.config) if args.config else demo_config_path())


def _with_database(
    args: argparse.Namespace, work: Callable[[Database, Config], Coroutine[Any, Any, T]]
) -> T:
    config = _config(args)
    data_dir = Path(args.data_dir) if args.data_dir else config.server.data_dir
    os.umask(PRIVATE_UMASK)  # the store holds password hashes: as private as serve keeps it
    data_dir.mkdir(parents=True, exist_ok=True)
    store = config.store
    database = open_database(
        data_dir / DATABASE_NAME,
        store.url.reveal() if store.url else None,
        store.node,
        store.lease_seconds,
        store.limits(),
    )
    try:
        return asyncio.run(work(database, config))
    finally:
        database.close()


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise AccountError("the two passwords differ")
    return first


async def _audit(database: Database, action: str, subject: str, detail: dict[str, Any]) -> None:
    await database.run(AuditLog(database).append, ACTOR, action, subject, detail)


def cmd_user_add(args: argparse.Namespace) -> int:
    password = _password(args)

    async def work(database: Database, config: Config) -> None:
        officers = OfficerStore(database, config.console)
        await officers.create(args.username, password, args.role, args.name or "")
        await _audit(database, "user.add", args.username, {"role": args.role})

    _with_database(args, work)
    print(f"officer {args.username} added ({args.role})")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    password = _password(args)

    async def work(database: Database, config: Config) -> None:
        await OfficerStore(database, config.console).set_password(args.username, password)
        await _audit(database, "user.password", args.username, {})

    _with_database(args, work)
    print(f"password of {args.username} changed; their sessions are closed")
    return 0


def cmd_user_set(args: argparse.Namespace) -> int:
    enabled = True if args.enable else False if args.disable else None

    async def work(database: Database, config: Config) -> None:
        officers = OfficerStore(database, config.console)
        await officers.update(args.username, role=args.role, enabled=enabled, unlock=args.unlock)
        detail = {"role": args.role, "enabled": enabled, "unlock": args.unlock}
        await _audit(database, "user.set", args.username, detail)

    _with_database(args, work)
    print(f"officer {args.username} updated")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    async def work(database: Database, config: Config) -> list[Any]:
        return await OfficerStore(database, config.console).all()

    for officer in _with_database(args, work):
        status = "enabled" if officer.enabled else "disabled"
        print(f"{officer.username}\t{officer.role}\t{status}\t{officer.display_name}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    async def work(database: Database, _config: Config) -> Any:
        return await database.run(AuditLog(database).verify)

    report = _with_database(args, work)
    if report.ok:
        print(f"audit log intact: {report.entries} entries; head {report.head}")
        return 0
    print(
        f"audit log BROKEN at entry {report.first_bad_seq}: {report.problem}"
        f" ({report.entries} entries verified before it)",
        file=sys.stderr,
    )
    return 1


def cmd_audit_show(args: argparse.Namespace) -> int:
    async def work(database: Database, _config: Config) -> list[Any]:
        log = AuditLog(database)
        return await database.run(log.entries, limit=args.limit, action=args.action)

    for entry in reversed(_with_database(args, work)):
        when = datetime.fromtimestamp(entry.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        detail = json.dumps(entry.detail, ensure_ascii=False)
        print(f"{entry.seq}\t{when}Z\t{entry.actor}\t{entry.action}\t{entry.subject}\t{detail}")
    return 0


def _common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--config", help="TOML configuration (default: the demo)")
    parser.add_argument("--data-dir", help="data directory (default: from the configuration)")
    return parser


def register(subparsers: Any) -> None:
    """Add the ``user`` and ``audit`` commands to the ``broadcaster`` command line."""
    roles = [r.value for r in Role]
    user = subparsers.add_parser("user", help="console officers").add_subparsers(
        dest="user_cmd", required=True
    )
    add = _common(user.add_parser("add", help="add an officer"))
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=roles)
    add.add_argument("--name", help="display name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=cmd_user_add)
    passwd = _common(user.add_parser("passwd", help="set an officer's password"))
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(func=cmd_user_passwd)
    change = _common(user.add_parser("set", help="role, enable/disable, unlock"))
    change.add_argument("username")
    change.add_argument("--role", choices=roles)
    switch = change.add_mutually_exclusive_group()
    switch.add_argument("--enable", action="store_true")
    switch.add_argument("--disable", action="store_true")
    change.add_argument("--unlock", action="store_true")
    change.set_defaults(func=cmd_user_set)
    _common(user.add_parser("list", help="list officers")).set_defaults(func=cmd_user_list)

    audit = subparsers.add_parser("audit", help="the audit log").add_subparsers(
        dest="audit_cmd", required=True
    )
    _common(audit.add_parser("verify", help="check the hash chain")).set_defaults(
        func=cmd_audit_verify
    )
    show = _common(audit.add_parser("show", help="print the newest entries"))
    show.add_argument("--limit", type=int, default=50)
    show.add_argument("--action", help="only actions starting with this")
    show.set_defaults(func=cmd_audit_show)
