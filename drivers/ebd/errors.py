"""The one exception tree of the EBD platform driver, split by whether a retry makes sense.

::

    EbdError
    ├── EbdLinkError (ConnectionError)     retryable: cannot connect, the connection dropped,
    │   └── EbdTimeoutError (TimeoutError)  or the peer did not answer in time
    ├── EbdFormatError (ValueError)        permanent: bytes that are not a valid EBD package
    │                                      or XML file; ``element`` names what is wrong and
    │                                      ``result_code`` is the EBDResponse code to answer
    ├── EbdSignatureError                  permanent: a signature is missing, malformed or
    │                                      does not verify (EBDResponse ResultCode 4)
    ├── EbdRefusedError                    the peer answered with an EBDResponse ResultCode
    │                                      other than 1; ``result_code`` says which
    └── EbdConfigError (ValueError)        permanent: bad key file, certificate or setting

Every class has a ``retryable`` attribute. Drivers raise; they never return a status flag.
Foreign errors (aiohttp, OSError, lxml) are mapped at the boundary with ``raise ... from``.
"""

from __future__ import annotations


class EbdError(Exception):
    """Base of every error the EBD driver raises on purpose."""

    retryable = False


class EbdLinkError(EbdError, ConnectionError):
    """The peer platform cannot be reached or dropped the connection."""

    retryable = True


class EbdTimeoutError(EbdLinkError, TimeoutError):
    """The peer platform did not answer within the configured time."""


class EbdFormatError(EbdError, ValueError):
    """A package, XML file or value breaks the EBD format; ``element`` names where."""

    def __init__(self, message: str, element: str = "", result_code: int = 2) -> None:
        super().__init__(f"{element}: {message}" if element else message)
        self.element = element
        self.result_code = result_code


class EbdSignatureError(EbdError):
    """A signature is missing, malformed or does not verify."""

    result_code = 4


class EbdRefusedError(EbdError):
    """The peer answered with an EBDResponse other than success."""

    def __init__(self, message: str, result_code: int) -> None:
        super().__init__(message)
        self.result_code = result_code
        # 0 "received, not processed" and 5 "other error" may pass; 2-4 will not.
        self.retryable = result_code in (0, 5)


class EbdConfigError(EbdError, ValueError):
    """A key file, certificate or setting is unusable; the message names it."""
