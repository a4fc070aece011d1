"""EBD tar packages: the fixed layout, and hostile tars refused before any content is used."""

from __future__ import annotations

import io
import tarfile

import pytest

from drivers.ebd import EbdFormatError, Package, read_package, write_package
from drivers.ebd.testing import WARNING_SOURCE_EBRID, raw_tar, tar_claiming

EBDID = "10" + WARNING_SOURCE_EBRID + "2024060100000001"
OTHER = "10" + WARNING_SOURCE_EBRID + "2024060100000002"


def test_layout_is_fixed_and_read_back() -> None:
    package = Package(EBDID, b"<EBD/>", b"<Signature/>", {"EBDR_b.mp3": b"b", "EBDR_a.wav": b"a"})
    data = write_package(package)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        assert all(m.isreg() and m.mode == 0o644 and m.mtime == 0 for m in tar.getmembers())
    assert names == [f"EBDB_{EBDID}.xml", f"EBDS_EBDB_{EBDID}.xml", "EBDR_a.wav", "EBDR_b.mp3"]
    assert package.tar_name == f"EBDT_{EBDID}.tar"
    assert read_package(data) == package
    assert write_package(package) == data  # one fixed form


def _link(name: str, kind: bytes, target: str = "/etc/passwd") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("members", "element"),
    [
        ((("../EBDB_x.xml", b"x"),), "../EBDB_x.xml"),
        ((("/etc/EBDR_a", b"x"),), "/etc/EBDR_a"),
        ((("dir/EBDR_a", b"x"),), "dir/EBDR_a"),
        (((f"EBDB_{EBDID}.xml", b"x"), _link("EBDR_a", tarfile.SYMTYPE)), "EBDR_a"),
        (((f"EBDB_{EBDID}.xml", b"x"), _link("EBDR_h", tarfile.LNKTYPE)), "EBDR_h"),
        ((_link("EBDR_dev", tarfile.CHRTYPE),), "EBDR_dev"),
        ((_link("EBDR_fifo", tarfile.FIFOTYPE),), "EBDR_fifo"),
        ((_link("d", tarfile.DIRTYPE),), "d"),
        (((f"EBDB_{EBDID}.xml", b"x"), (f"EBDB_{EBDID}.xml", b"y")), f"EBDB_{EBDID}.xml"),
        (((f"EBDB_{EBDID}.xml", b"x"), (f"EBDS_EBDB_{OTHER}.xml", b"y")), f"EBDS_EBDB_{OTHER}"),
        (((f"EBDB_{EBDID}.xml", b"x"), (f"EBDB_{OTHER}.xml", b"y")), "EBDT"),
        ((("EBDR_a.mp3", b"x"),), "EBDT"),
        (tuple((f"EBDR_{i}", b"x") for i in range(40)), "EBDT"),
    ],
)
def test_hostile_tars_are_refused(members: tuple[object, ...], element: str) -> None:
    with pytest.raises(EbdFormatError) as caught:
        read_package(raw_tar(*members))  # type: ignore[arg-type]
    assert element in str(caught.value)


def test_huge_members_are_refused() -> None:
    with pytest.raises(EbdFormatError, match=f"EBDB_{EBDID}.xml: .* over the"):
        read_package(raw_tar((f"EBDB_{EBDID}.xml", b"x" * (5 * 1024 * 1024))))
    with pytest.raises(EbdFormatError, match="EBDT"):
        read_package(tar_claiming(f"EBDB_{EBDID}.xml", 5 * 1024 * 1024))


def test_not_a_tar_is_a_clear_error() -> None:
    with pytest.raises(EbdFormatError, match="EBDT"):
        read_package(b"garbage" * 100)
    with pytest.raises(EbdFormatError, match="EBDT"):
        read_package(b"")
