"""China's emergency-broadcast platform interface (应急广播平台, GD/J 082/083-2018): EBD packages.

Layers: ``codes`` (code tables, id rules) → ``model`` (plain values) → ``xmlsafe``/``codec``/
``codec_reports`` (XML files) → ``package`` (the tar) → ``signature``/``sm2``/``keys`` (EBDS
signing) → ``exchange`` (whole packages, replies) → ``client`` (the HTTP POST); ``config``
holds the settings of one peer link and of signing.
``simulator`` is a platform peer over real HTTP. Errors: see ``drivers.ebd.errors``.
"""

from drivers.ebd.client import PostTimeouts, post_package
from drivers.ebd.codec import read_ebd, write_ebd
from drivers.ebd.codes import (
    AuxiliaryType,
    BrdStateCode,
    EbdType,
    MsgType,
    ResourceStateCode,
    ResultCode,
    Severity,
    area_code,
    make_ebdid,
    make_ebmid,
)
from drivers.ebd.config import EbdPeerConfig, EbdSigningConfig
from drivers.ebd.errors import (
    EbdConfigError,
    EbdError,
    EbdFormatError,
    EbdLinkError,
    EbdRefusedError,
    EbdSignatureError,
    EbdTimeoutError,
)
from drivers.ebd.exchange import (
    EbdIdSequence,
    Incoming,
    build_package,
    make_response,
    make_state_response,
    read_incoming,
    result_of,
)
from drivers.ebd.keys import PeerCertificate, TrustList, load_certificate, load_private_key
from drivers.ebd.model import (
    Auxiliary,
    ConnectionCheck,
    Coverage,
    DeviceEntry,
    DeviceInfo,
    Dispatch,
    Ebd,
    EbdResponse,
    Ebm,
    EbmStateRequest,
    EbmStateResponse,
    OmdRequest,
    PlatformEntry,
    PlatformInfo,
    ResourceState,
    ResourceStateEntry,
)
from drivers.ebd.package import Package, read_package, write_package
from drivers.ebd.signature import SignatureForm, SignatureValue, Signer, Verifier
from drivers.ebd.sm2 import Sm2Signer, Sm2Verifier

__all__ = [
    "Auxiliary",
    "AuxiliaryType",
    "BrdStateCode",
    "ConnectionCheck",
    "Coverage",
    "DeviceEntry",
    "DeviceInfo",
    "Dispatch",
    "Ebd",
    "EbdConfigError",
    "EbdError",
    "EbdFormatError",
    "EbdIdSequence",
    "EbdLinkError",
    "EbdPeerConfig",
    "EbdRefusedError",
    "EbdResponse",
    "EbdSignatureError",
    "EbdSigningConfig",
    "EbdTimeoutError",
    "EbdType",
    "Ebm",
    "EbmStateRequest",
    "EbmStateResponse",
    "Incoming",
    "MsgType",
    "OmdRequest",
    "Package",
    "PeerCertificate",
    "PlatformEntry",
    "PlatformInfo",
    "PostTimeouts",
    "ResourceState",
    "ResourceStateCode",
    "ResourceStateEntry",
    "ResultCode",
    "Severity",
    "SignatureForm",
    "SignatureValue",
    "Signer",
    "Sm2Signer",
    "Sm2Verifier",
    "TrustList",
    "Verifier",
    "area_code",
    "build_package",
    "load_certificate",
    "load_private_key",
    "make_ebdid",
    "make_ebmid",
    "make_response",
    "make_state_response",
    "post_package",
    "read_ebd",
    "read_incoming",
    "read_package",
    "result_of",
    "write_ebd",
    "write_package",
]
