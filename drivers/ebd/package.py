"""EBD packages: the uncompressed tar ``EBDT_<EBDID>.tar`` and its safe unpacking (GD/J 083-2018).

A package holds ``EBDB_<EBDID>.xml`` (the business data), ``EBDS_EBDB_<EBDID>.xml`` (its
signature) and zero or more resource files (``EBDR_<name>``, audio). Writing makes flat entries
in one fixed order with fixed metadata. Reading finds files by name prefix as the deployed
receivers do (``EBDB``, ``EBDS``, anything else is a resource) and refuses, before reading any
content: paths, links, devices, directories, oversize members, too many members, duplicate
names and an ``EBDS`` that signs another EBDID.
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass, field

from drivers.ebd.codes import check_ebdid
from drivers.ebd.errors import EbdFormatError

MAX_PACKAGE_BYTES = 64 * 1024 * 1024
MAX_MEMBER_BYTES = 48 * 1024 * 1024
MAX_XML_MEMBER_BYTES = 4 * 1024 * 1024
MAX_MEMBERS = 32
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,120}")


@dataclass(frozen=True)
class Package:
    """The files of one package: the EBDB bytes, the EBDS bytes (if any) and resources."""

    ebdid: str
    ebdb: bytes
    ebds: bytes | None = None
    resources: dict[str, bytes] = field(default_factory=dict)

    @property
    def tar_name(self) -> str:
        """``EBDT_<EBDID>.tar``, the name the package travels under."""
        return f"EBDT_{self.ebdid}.tar"


def ebdb_name(ebdid: str) -> str:
    """``EBDB_<EBDID>.xml``."""
    return f"EBDB_{ebdid}.xml"


def ebds_name(ebdid: str) -> str:
    """``EBDS_EBDB_<EBDID>.xml``."""
    return f"EBDS_EBDB_{ebdid}.xml"


def write_package(package: Package) -> bytes:
    """The tar bytes: EBDB, then EBDS, then resources sorted by name; fixed metadata."""
    check_ebdid(package.ebdid)
    members = [(ebdb_name(package.ebdid), package.ebdb)]
    if package.ebds is not None:
        members.append((ebds_name(package.ebdid), package.ebds))
    for name in sorted(package.resources):
        if not _SAFE_NAME.fullmatch(name) or name.startswith(("EBDB", "EBDS")):
            raise EbdFormatError(f"{name!r} is not a plain resource file name", "EBDR")
        members.append((name, package.resources[name]))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def read_package(data: bytes) -> Package:
    """Unpack and check tar bytes; raise ``EbdFormatError`` naming the member at fault."""
    if len(data) > MAX_PACKAGE_BYTES:
        raise EbdFormatError(f"{len(data)} bytes is over the limit", "EBDT")
    files: dict[str, bytes] = {}
    with _open_tar(data) as tar:
        for count, info in enumerate(_members(tar), start=1):
            name = info.name
            if count > MAX_MEMBERS:
                raise EbdFormatError(f"more than {MAX_MEMBERS} members", "EBDT")
            if not info.isreg():
                raise EbdFormatError("is a link, device or directory, not a file", name)
            if not _SAFE_NAME.fullmatch(name) or name.startswith("."):
                raise EbdFormatError("member name is a path or has odd characters", name)
            if name in files:
                raise EbdFormatError("appears twice", name)
            limit = MAX_XML_MEMBER_BYTES if name.startswith("EBD") else MAX_MEMBER_BYTES
            if info.size > limit:
                raise EbdFormatError(f"{info.size} bytes is over the {limit} limit", name)
            handle = tar.extractfile(info)
            if handle is None:
                raise EbdFormatError("cannot be read", name)
            files[name] = handle.read()
    return _assemble(files)


def _open_tar(data: bytes) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    except tarfile.TarError as error:
        raise EbdFormatError(f"not a tar file ({error})", "EBDT") from error


def _members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    try:
        members = []
        for info in tar:
            members.append(info)
            if len(members) > MAX_MEMBERS:
                break
        return members
    except tarfile.TarError as error:
        raise EbdFormatError(f"damaged tar ({error})", "EBDT") from error


def _assemble(files: dict[str, bytes]) -> Package:
    ebdb = [name for name in files if name.startswith("EBDB")]
    if len(ebdb) != 1:
        raise EbdFormatError(f"{len(ebdb)} EBDB files, need exactly one", "EBDT", result_code=3)
    match = re.fullmatch(r"EBDB_(\d+)\.xml", ebdb[0])
    if match is None:
        raise EbdFormatError("is not named EBDB_<EBDID>.xml", ebdb[0])
    ebdid = check_ebdid(match.group(1), ebdb[0])
    signatures = [name for name in files if name.startswith("EBDS")]
    if len(signatures) > 1:
        raise EbdFormatError(f"{len(signatures)} EBDS files, need at most one", "EBDT")
    if signatures and signatures[0] != ebds_name(ebdid):
        raise EbdFormatError(f"signs another package than {ebdb[0]}", signatures[0])
    resources = {n: b for n, b in files.items() if not n.startswith(("EBDB", "EBDS"))}
    return Package(
        ebdid=ebdid,
        ebdb=files[ebdb[0]],
        ebds=files[signatures[0]] if signatures else None,
        resources=resources,
    )
