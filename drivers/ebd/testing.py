"""Helpers for tests and benches of EBD peers: identities (keys, certificate ids, trust lists)
made in memory, sample EBM values with real-looking ids (Ulanqab's division codes), and raw
(hostile) tars the package writer would never make."""

from __future__ import annotations

import io
import secrets
import tarfile
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from drivers.ebd.codes import MsgType, Severity, make_ebmid
from drivers.ebd.keys import PeerCertificate, TrustList
from drivers.ebd.model import Ebm
from drivers.ebd.sm2 import CURVE_ORDER, Sm2Signer, Sm2Verifier, public_key_of
from drivers.ebd.xmlsafe import beijing_now

CITY_PLATFORM_EBRID = "31509000000000101010101"  # city-level generic platform, Ulanqab
COUNTY_PLATFORM_EBRID = "41509210000000101010101"  # county-level platform
WARNING_SOURCE_EBRID = "31509000000000001010101"  # message source unit


@dataclass(frozen=True)
class PlatformIdentity:
    """One platform's EBRID, SM2 key and certificate id."""

    ebrid: str
    private_key: int
    cert_id: bytes

    @property
    def certificate(self) -> PeerCertificate:
        """What a peer puts in its trust list for this platform."""
        return PeerCertificate(self.cert_id, public_key_of(self.private_key), self.ebrid)

    def signer(self, **options: object) -> Sm2Signer:
        """A software signer with this key (options as for ``Sm2Signer``)."""
        return Sm2Signer(self.private_key, self.cert_id, **options)  # type: ignore[arg-type]


def make_identity(ebrid: str) -> PlatformIdentity:
    """A fresh identity with a random key and certificate id."""
    key = secrets.randbelow(CURVE_ORDER - 2) + 1
    return PlatformIdentity(ebrid, key, secrets.token_bytes(6))


def verifier_for(*identities: PlatformIdentity, **options: object) -> Sm2Verifier:
    """A verifier trusting exactly these identities (options as for ``Sm2Verifier``)."""
    trust = TrustList([identity.certificate for identity in identities])
    return Sm2Verifier(trust, **options)  # type: ignore[arg-type]


def sample_ebm(
    sender_ebrid: str = WARNING_SOURCE_EBRID, sequence: int = 1, **changes: object
) -> Ebm:
    """A red rainstorm warning for two Ulanqab counties, starting now for two hours."""
    now = beijing_now()
    ebm = Ebm(
        ebmid=make_ebmid(sender_ebrid, now.strftime("%Y%m%d"), sequence),
        msg_type=MsgType.ACTUAL,
        sender_name="乌兰察布市突发事件预警信息发布中心",
        sender_code=sender_ebrid,
        send_time=now,
        event_type="11B03",
        severity=Severity.RED,
        start_time=now,
        end_time=now + timedelta(hours=2),
        title="乌兰察布市气象台发布暴雨红色预警",
        description="预计未来3小时集宁区、卓资县降雨量将达100毫米以上，请注意防范。",
        area_codes=("150902000000", "150921000000"),
    )
    return replace(ebm, **changes)  # type: ignore[arg-type]


def fixed_time() -> datetime:
    """A fixed Beijing time for byte-exact vectors."""
    return datetime(2024, 6, 1, 10, 0, 0)


def raw_tar(*members: tarfile.TarInfo | tuple[str, bytes]) -> bytes:
    """A tar of exactly these members: (name, bytes) files, or headers as given (links...)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return buffer.getvalue()


def tar_claiming(name: str, size: int) -> bytes:
    """A tar whose one header claims ``size`` bytes for ``name`` that the archive does not hold."""
    data = bytearray(raw_tar((name, b"x" * 512)))
    data[124:136] = f"{size:011o}\0".encode()
    data[148:156] = b"        "
    data[148:155] = f"{sum(data[:512]):06o}\0".encode()
    return bytes(data)
