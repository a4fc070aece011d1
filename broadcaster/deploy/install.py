"""``broadcaster install``: the service user, its directories, configuration, launcher and unit.

Everything is created under ``root`` (``/`` on a real machine; a staging directory for images
and tests) and nothing that exists is overwritten, except the unit file, which belongs to the
package:

- the system user and group ``broadcaster`` (``useradd --system``; also in ``dialout`` for the
  serial devices of GSM modems, RDS encoders and wired loudspeaker controllers, and in
  ``audio`` for the sound card that feeds FM transmitters);
- ``/etc/broadcaster`` (root, group-readable) with ``broadcaster.toml`` copied from an example
  and the registry files it names by relative path, and ``secrets.env`` with a random value
  for every ``{ env = "NAME" }`` secret the configuration uses (mode 0640, never printed);
- ``/var/lib/broadcaster`` and ``/var/lib/broadcaster/backups`` (the service user's, 0700);
- ``/usr/local/bin/broadcaster``, a launcher for this installation's Python;
- ``/etc/systemd/system/broadcaster.service`` from ``systemd/``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broadcaster.errors import DeployError

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
UNIT_SOURCE = PACKAGE_ROOT / "systemd" / "broadcaster.service"
DEFAULT_CONFIG_SOURCE = PACKAGE_ROOT / "config" / "county.toml"

CONFIG_DIR = Path("etc/broadcaster")
DATA_DIR = Path("var/lib/broadcaster")
LAUNCHER = Path("usr/local/bin/broadcaster")
UNIT = Path("etc/systemd/system/broadcaster.service")


@dataclass(frozen=True, slots=True)
class InstallOptions:
    root: Path = Path("/")
    user: str = "broadcaster"
    config_source: Path = DEFAULT_CONFIG_SOURCE
    create_user: bool = True
    python: Path = Path(sys.executable)


def _ids(root: Path, name: str) -> tuple[int, int] | None:
    """(uid, gid) of ``name`` in ``root``'s passwd file, or None."""
    try:
        lines = (root / "etc/passwd").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == name:
            return int(fields[2]), int(fields[3])
    return None


def _has_group(root: Path, name: str) -> bool:
    try:
        text = (root / "etc/group").read_text(encoding="utf-8")
    except OSError:
        return False
    return any(line.split(":")[0] == name for line in text.splitlines())


def _create_user(options: InstallOptions) -> str:
    if _ids(options.root, options.user) is not None:
        return f"user {options.user} exists"
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    command = [useradd, "--system", "--user-group", "--no-create-home"]
    command += ["--home-dir", "/" + str(DATA_DIR), "--shell", "/usr/sbin/nologin"]
    groups = [g for g in ("dialout", "audio") if _has_group(options.root, g)]
    if groups:
        command += ["--groups", ",".join(groups)]
    if options.root != Path("/"):
        command += ["--root", str(options.root)]
    try:
        subprocess.run([*command, options.user], check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise DeployError("useradd is not installed (Debian package passwd)") from None
    except subprocess.CalledProcessError as exc:
        raise DeployError(f"useradd failed: {exc.stderr.strip() or exc.returncode}") from None
    return f"created system user {options.user}"


def _make_dir(path: Path, mode: int, owner: tuple[int, int] | None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    if owner is not None and os.geteuid() == 0:
        os.chown(path, *owner)


def _write_new(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> bool:
    """Write ``path`` unless it exists; True if written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    if owner is not None and os.geteuid() == 0:
        os.chown(path, *owner)
    return True


def _env_secrets(node: Any) -> Iterator[str]:
    """Names of the environment variables a configuration takes secrets from."""
    if isinstance(node, Mapping):
        if set(node) == {"env"} and isinstance(node["env"], str):
            yield node["env"]
            return
        for value in node.values():
            yield from _env_secrets(value)
    elif isinstance(node, list):
        for value in node:
            yield from _env_secrets(value)


def _registry_files(data: Mapping[str, Any]) -> list[Path]:
    registry = data.get("registry", {})
    found = []
    for key in ("divisions", "targets"):
        value = registry.get(key) if isinstance(registry, Mapping) else None
        if isinstance(value, str) and not Path(value).is_absolute():
            found.append(Path(value))
    return found


def install(options: InstallOptions) -> list[str]:
    """Carry out the installation; returns one line per step. Raises DeployError."""
    root = options.root
    try:
        text = options.config_source.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except OSError as exc:
        raise DeployError(f"cannot read {options.config_source}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeployError(f"{options.config_source}: not valid TOML: {exc}") from None
    if not UNIT_SOURCE.is_file():
        raise DeployError(f"the unit file {UNIT_SOURCE} is missing from this installation")
    done = [_create_user(options)] if options.create_user else []
    ids = _ids(root, options.user)
    if ids is None and os.geteuid() == 0:
        raise DeployError(f"user {options.user} does not exist in {root / 'etc/passwd'}")
    config_owner = (0, ids[1]) if ids else None

    _make_dir(root / CONFIG_DIR, 0o750, config_owner)
    _make_dir(root / DATA_DIR, 0o700, ids)
    _make_dir(root / DATA_DIR / "backups", 0o700, ids)
    done.append(f"directories /{CONFIG_DIR}, /{DATA_DIR} and /{DATA_DIR}/backups")

    config_path = root / CONFIG_DIR / "broadcaster.toml"
    if _write_new(config_path, text.encode(), 0o640, config_owner):
        done.append(f"configuration /{CONFIG_DIR}/broadcaster.toml from {options.config_source}")
        for relative in _registry_files(data):
            source = options.config_source.parent / relative
            if source.is_file():
                _write_new(root / CONFIG_DIR / relative, source.read_bytes(), 0o640, config_owner)
                done.append(f"registry file /{CONFIG_DIR}/{relative}")
    else:
        done.append(f"configuration /{CONFIG_DIR}/broadcaster.toml kept as it is")

    names = sorted(set(_env_secrets(data)))
    lines = "".join(f"{name}={secrets.token_urlsafe(32)}\n" for name in names)
    if _write_new(root / CONFIG_DIR / "secrets.env", lines.encode(), 0o640, config_owner):
        done.append(f"secrets /{CONFIG_DIR}/secrets.env: {', '.join(names) or 'none needed'}")

    launcher = f'#!/bin/sh\nexec "{options.python}" -m broadcaster "$@"\n'
    if _write_new(root / LAUNCHER, launcher.encode(), 0o755, None):
        done.append(f"launcher /{LAUNCHER} for {options.python}")

    unit = root / UNIT
    unit.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(UNIT_SOURCE, unit)
    unit.chmod(0o644)
    done.append(f"unit /{UNIT}")
    return done
