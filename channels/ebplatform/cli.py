"""``broadcaster ebd``: look into an EBD package and make an SM2 identity for a platform link.

- ``ebd inspect FILE.tar [--trust CERT_OR_DIR ...]`` prints the package (files, envelope, body)
  as JSON and, with a trust list, verifies its signature (``docs/protocols/ebd.md`` §4). Exit 0
  when the package is well formed (and its signature verifies), 1 otherwise, with the reason.
- ``ebd keygen --out DIR --ebrid EBRID`` writes ``key.pem`` (mode 600) and a self-signed
  ``cert.pem`` (SM2 with SM3, a random 6-byte serial = the certificate id) with ``openssl``,
  and prints the ``cert_id`` to configure; the peer imports ``cert.pem`` into its trust list.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from drivers.ebd import EbdError, TrustList, read_ebd, read_package
from drivers.ebd.codes import check_ebrid
from drivers.ebd.signature import verify_package
from drivers.ebd.sm2 import DEFAULT_USER_ID, Sm2Verifier


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, int | str | float) or value is None:
        return value
    return str(value)


def cmd_inspect(args: argparse.Namespace) -> int:
    try:
        package = read_package(Path(args.file).read_bytes())
        ebd = read_ebd(package.ebdb)
    except OSError as error:
        print(f"error: cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return 1
    except EbdError as error:
        print(f"error: {args.file}: {error}", file=sys.stderr)
        return 1
    files = {
        "ebdb": len(package.ebdb),
        "ebds": len(package.ebds) if package.ebds else None,
        "resources": {name: len(data) for name, data in sorted(package.resources.items())},
    }
    document = {"tar": package.tar_name, "files": files, "type": ebd.ebd_type.value}
    document["ebd"] = _plain(ebd)
    print(json.dumps(document, ensure_ascii=False, indent=1))
    if not args.trust:
        print("signature: not checked (no --trust given)", file=sys.stderr)
        return 0
    try:
        verifier = Sm2Verifier(
            TrustList.from_paths([Path(p) for p in args.trust]),
            user_id=args.user_id.encode(),
            counter_signed=args.counter_signed,
        )
        signature = verify_package(package, verifier)
    except EbdError as error:
        print(f"signature: REFUSED: {error}", file=sys.stderr)
        return 1
    print(f"signature: verified (certificate {signature.value.cert_id.hex()})", file=sys.stderr)
    return 0


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, check=False)
    if done.returncode != 0:
        raise OSError(done.stderr.decode(errors="replace").strip() or "openssl failed")


def cmd_keygen(args: argparse.Namespace) -> int:
    out = Path(args.out)
    key, cert = out / "key.pem", out / "cert.pem"
    try:
        check_ebrid(args.ebrid)
    except EbdError as error:
        print(f"error: --ebrid: {error}", file=sys.stderr)
        return 1
    if key.exists() or cert.exists():
        print(f"error: {out} already holds key.pem or cert.pem; not overwritten", file=sys.stderr)
        return 1
    cert_id = secrets.token_bytes(6).hex()
    try:
        out.mkdir(parents=True, exist_ok=True)
        key.touch(mode=0o600)
        _openssl("genpkey", "-algorithm", "SM2", "-out", str(key))
        key.chmod(0o600)
        subject = f"/CN={args.ebrid}"
        _openssl(
            "req", "-new", "-x509", "-key", str(key), "-sm3", "-sigopt",
            f"distid:{DEFAULT_USER_ID.decode()}", "-subj", subject, "-days", str(args.days),
            "-set_serial", f"0x{cert_id}", "-out", str(cert),
        )  # fmt: skip
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"cert_id = {json.dumps(cert_id)}")
    print(f"key_file = {json.dumps(str(key))}", file=sys.stderr)
    print(f"give {cert} to the peer platform for its trust list", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ebd inspect`` and ``ebd keygen`` to a program's subcommands."""
    ebd = subparsers.add_parser("ebd", help="EBD packages of the emergency-broadcast platform")
    commands = ebd.add_subparsers(dest="ebd_cmd", required=True)
    inspect = commands.add_parser("inspect", help="print a package, verify its signature")
    inspect.add_argument("file", help="EBDT_<EBDID>.tar")
    inspect.add_argument("--trust", action="append", help="peer certificate or folder of them")
    inspect.add_argument("--user-id", default=DEFAULT_USER_ID.decode(), help="SM2 user id")
    inspect.add_argument("--counter-signed", action="store_true", help="counter is signed too")
    inspect.set_defaults(func=cmd_inspect)
    keygen = commands.add_parser("keygen", help="an SM2 key and self-signed certificate")
    keygen.add_argument("--out", required=True, help="folder for key.pem and cert.pem")
    keygen.add_argument("--ebrid", required=True, help="our 23-digit EBRID (certificate CN)")
    keygen.add_argument("--days", type=int, default=3650, help="certificate validity")
    keygen.set_defaults(func=cmd_keygen)
