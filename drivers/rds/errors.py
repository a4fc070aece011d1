"""The one exception tree of the RDS encoder drivers, split by whether a retry makes sense.

::

    RdsError
    ├── RdsLinkError (ConnectionError)      retryable: cannot connect, or the link was lost
    │   └── RdsTimeoutError (TimeoutError)  retryable: no acknowledgement after every attempt
    ├── RdsRejectedError                    permanent: the encoder refused the command (NAK)
    │   └── RdsUnsupportedError             permanent: this encoder family cannot do that
    ├── RdsValueError (ValueError)          permanent: a value the RDS standard cannot carry
    │                                       (RT over 64 characters, a character outside the
    │                                       RDS set, PTY outside 0..31, PI outside 16 bits)
    ├── RdsConfigError (ValueError)         permanent: bad encoder URL or settings
    └── RdsFrameError (ValueError)          bytes that are not a valid frame (bad CRC, bad
                                            stuffing, bad length); carries the UECP ACK code
                                            an encoder answers with

Every class has a ``retryable`` attribute so a caller can decide without a table. Drivers
raise; they never return a status flag. Foreign errors (OSError, serial.SerialException) are
mapped at the transport boundary with ``raise ... from``.
"""

from __future__ import annotations


class RdsError(Exception):
    """Base of every error the RDS drivers raise on purpose."""

    retryable = False


class RdsLinkError(RdsError, ConnectionError):
    """The encoder cannot be reached or the link dropped; the same command may work later."""

    retryable = True


class RdsTimeoutError(RdsLinkError, TimeoutError):
    """The encoder did not acknowledge a command after every retransmission."""


class RdsRejectedError(RdsError):
    """The encoder answered with a negative acknowledgement; ``code`` is what it said."""

    def __init__(self, message: str, code: int | str | None = None) -> None:
        super().__init__(message)
        self.code = code


class RdsUnsupportedError(RdsRejectedError):
    """The encoder family cannot carry this element (for example EWS over the ASCII dialect)."""


class RdsValueError(RdsError, ValueError):
    """A value the RDS standard cannot carry; nothing was sent."""


class RdsConfigError(RdsError, ValueError):
    """The encoder URL or settings are invalid; the message names the setting."""


class RdsFrameError(RdsError, ValueError):
    """Bytes that do not form a valid frame; ``ack_code`` is the UECP answer to them.

    ``sequence`` is the frame's sequence counter when it could still be read (0 otherwise),
    so an encoder can name the frame it refuses.
    """

    def __init__(self, message: str, ack_code: int, sequence: int = 0) -> None:
        super().__init__(message)
        self.ack_code = ack_code
        self.sequence = sequence
