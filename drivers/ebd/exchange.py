"""Building and reading whole EBD packages: the API a channel or an inbound endpoint uses.

- ``build_package``: an ``Ebd`` value (plus resource files) → a signed ``Package``.
- ``read_incoming``: tar bytes → the checked package, its parsed ``Ebd`` and signature; the
  EBDID inside the EBDB must be the one in its file name, every resource an EBM names must be
  in the package with the stated size, and the signature must verify
  (except, if so configured, on a heartbeat, as two of the deployed platforms do).
- ``make_response`` / ``make_state_response``: the signed EBDResponse or EBMStateResponse to
  answer a package with; ``result_of`` turns a received EBDResponse into a return or a raise.
- ``EbdIdSequence``: package ids as ``yyyyMMdd`` + an 8-digit daily counter, as deployed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from drivers.ebd.codec import read_ebd, write_ebd
from drivers.ebd.codes import (
    BRD_STATE_DESCRIPTIONS,
    RESULT_DESCRIPTIONS,
    BrdStateCode,
    EbdType,
    ResultCode,
    make_ebdid,
)
from drivers.ebd.errors import EbdFormatError, EbdRefusedError
from drivers.ebd.model import Body, Coverage, Ebd, EbdResponse, Ebm, EbmStateResponse
from drivers.ebd.package import Package, read_package
from drivers.ebd.signature import (
    SignatureFile,
    SignatureForm,
    Signer,
    Verifier,
    sign_package,
    verify_package,
)
from drivers.ebd.xmlsafe import beijing_now


class EbdIdSequence:
    """Package ids of one source: ``yyyyMMdd`` + an 8-digit counter that restarts daily.

    ``start`` lets a caller resume after a restart (the counter is not persisted here).
    """

    def __init__(
        self, source_ebrid: str, start: int = 0, clock: Callable[[], datetime] = beijing_now
    ) -> None:
        self.source_ebrid = source_ebrid
        self._clock = clock
        self._day = ""
        self._count = start

    def next(self) -> str:
        """A fresh ordinary EBDID."""
        day = self._clock().strftime("%Y%m%d")
        if self._day and day != self._day:
            self._count = 0
        self._day = day
        self._count += 1
        if self._count >= 10**8:
            raise EbdFormatError("more than 99,999,999 packages today", "EBDID")
        return make_ebdid(self.source_ebrid, int(f"{day}{self._count:08d}"))

    def heartbeat(self) -> str:
        """The heartbeat EBDID of this source (kind 01, sequence all zeros)."""
        return make_ebdid(self.source_ebrid, 0, heartbeat=True)


def build_package(
    ebd: Ebd,
    signer: Signer | None,
    resources: dict[str, bytes] | None = None,
    form: SignatureForm = SignatureForm.CURRENT,
) -> Package:
    """Write ``ebd`` once and sign those bytes; ``signer=None`` leaves the package unsigned."""
    package = Package(ebd.ebdid, write_ebd(ebd), None, dict(resources or {}))
    check_resources(ebd, package)
    return sign_package(package, signer, form) if signer is not None else package


def check_resources(ebd: Ebd, package: Package) -> None:
    """Every ``Auxiliary`` of an EBM names a file in the package, of the stated size."""
    if not isinstance(ebd.body, Ebm):
        return
    for auxiliary in ebd.body.auxiliaries:
        where = f"EBD/EBM/MsgContent/Auxiliary[{auxiliary.desc}]"
        data = package.resources.get(auxiliary.desc)
        if data is None:
            raise EbdFormatError("names no file in the package", where, result_code=3)
        if auxiliary.size is not None and auxiliary.size != len(data):
            raise EbdFormatError(f"Size {auxiliary.size} but the file has {len(data)}", where)


@dataclass(frozen=True)
class Incoming:
    """A received package after every check."""

    package: Package
    ebd: Ebd
    signature: SignatureFile | None


def read_incoming(
    data: bytes, verifier: Verifier | None, *, verify_heartbeat: bool = True
) -> Incoming:
    """Unpack, parse and verify; ``EbdFormatError`` / ``EbdSignatureError`` say what is wrong.

    ``verifier=None`` skips signature checks (for tests and trusted links only).
    """
    package = read_package(data)
    ebd = read_ebd(package.ebdb)
    if ebd.ebdid != package.ebdid:
        raise EbdFormatError(
            f"EBDID {ebd.ebdid} differs from the file name's {package.ebdid}", "EBD/EBDID"
        )
    signature = None
    heartbeat = ebd.ebd_type is EbdType.CONNECTION_CHECK
    if verifier is not None and (verify_heartbeat or not heartbeat):
        signature = verify_package(package, verifier)
    check_resources(ebd, package)
    return Incoming(package, ebd, signature)


def _reply(
    body: Body,
    ebdid: str,
    local_ebrid: str,
    request: Ebd | None,
    signer: Signer | None,
    related_ebdid: str | None,
) -> Package:
    ebd = Ebd(
        ebdid=ebdid,
        src_ebrid=local_ebrid,
        time=beijing_now(),
        body=body,
        dest_ebrid=request.src_ebrid if request else None,
        related_ebdid=related_ebdid,
    )
    return build_package(ebd, signer)


def make_response(
    ebdid: str,
    local_ebrid: str,
    request: Ebd | None,
    code: ResultCode,
    signer: Signer | None,
    desc: str | None = None,
) -> Package:
    """The signed EBDResponse for ``request`` (None when it could not even be parsed)."""
    body = EbdResponse(code, desc if desc is not None else RESULT_DESCRIPTIONS[code])
    related = request.ebdid if request else None
    return _reply(body, ebdid, local_ebrid, request, signer, related)


def make_state_response(
    ebdid: str,
    local_ebrid: str,
    ebmid: str,
    state: BrdStateCode,
    signer: Signer | None,
    *,
    request: Ebd | None = None,
    coverage: Coverage | None = None,
    desc: str | None = None,
) -> Package:
    """A signed EBMStateResponse; ``request`` is the EBMStateRequest it answers, if any."""
    body = EbmStateResponse(
        rpt_time=beijing_now(),
        ebmid=ebmid,
        state=state,
        state_desc=desc if desc is not None else BRD_STATE_DESCRIPTIONS[state],
        coverage=coverage,
    )
    related = request.ebdid if request else None
    return _reply(body, ebdid, local_ebrid, request, signer, related)


def result_of(reply: Ebd, request_ebdid: str) -> EbdResponse:
    """The EBDResponse in ``reply`` if it says success; ``EbdRefusedError`` otherwise.

    A reply naming another request in RelatedEBD is refused as a format error; a reply
    without RelatedEBD is accepted (two deployed platforms leave it out).
    """
    if not isinstance(reply.body, EbdResponse):
        raise EbdFormatError(f"reply is {reply.ebd_type.value}, not EBDResponse", "EBD/EBDType")
    if reply.related_ebdid and reply.related_ebdid != request_ebdid:
        raise EbdFormatError(
            f"reply answers {reply.related_ebdid}, not {request_ebdid}", "EBD/RelatedEBD/EBDID"
        )
    if reply.body.result_code is not ResultCode.OK:
        code = int(reply.body.result_code)
        raise EbdRefusedError(f"peer answered ResultCode {code}: {reply.body.result_desc}", code)
    return reply.body
