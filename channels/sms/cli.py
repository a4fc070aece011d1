"""``sms import``: check a subscriber CSV and turn it into registry entries.

::

    python -m channels.sms import FILE.csv [--channel sms] [-o targets-sms.json]

Prints one line per refused row (with its line number) on stderr and the groups as registry
JSON (the form of ``config/demo/targets.json``) on stdout or into ``-o``. Exit status 0 when
every row was imported, 2 when some rows were refused, 1 when nothing could be imported.
``register(subparsers)`` adds the same command to another argparse program as ``sms import``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from channels.sms.groups import SmsImportError, import_groups, registry_entries


def cmd_import(args: argparse.Namespace) -> int:
    try:
        imported = import_groups(Path(args.file), args.channel)
    except SmsImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for problem in imported.problems:
        print(f"{args.file}: {problem}", file=sys.stderr)
    document = json.dumps(registry_entries(imported.targets), ensure_ascii=False, indent=1)
    if args.output:
        try:
            Path(args.output).write_text(document + "\n", encoding="utf-8")
        except OSError as exc:
            print(f"error: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return 1
    else:
        print(document)
    print(
        f"{len(imported.targets)} groups, {imported.members} numbers;"
        f" {len(imported.problems)} problems",
        file=sys.stderr,
    )
    return 2 if imported.problems else 0


def _add_import(parsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = parsers.add_parser("import", help="check a subscriber CSV, print registry JSON")
    parser.add_argument("file", help="CSV with columns group,name,division,number")
    parser.add_argument("--channel", default="sms", help="channel name of the targets")
    parser.add_argument("-o", "--output", help="write the registry JSON here")
    parser.set_defaults(func=cmd_import)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sms import`` to a program's subcommands."""
    sms = subparsers.add_parser("sms", help="SMS subscriber groups")
    _add_import(sms.add_subparsers(dest="sms_cmd", required=True))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m channels.sms", description=__doc__.split("\n")[0]
    )
    _add_import(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))
