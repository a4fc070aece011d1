"""The one exception tree of the loudspeaker box driver, split by whether a retry makes sense.

::

    SpeakerError
    ├── SpeakerRetryableError             try again later; the command may still get through
    │   ├── SpeakerConnectionError        (also ConnectionError) link down, broker unreachable
    │   ├── SpeakerTimeoutError           (also TimeoutError) no reply from a box in time
    │   ├── BoxOfflineError               the box is not connected on any link right now
    │   ├── MediaDownloadError            box side: audio could not be fetched or stored
    │   │   └── DownloadInterruptedError  a failure that may pass: tried again before the fallback
    │   └── BoxStorageError               box side: the journal cannot be written
    └── SpeakerPermanentError             retrying the same thing gives the same answer
        ├── SpeakerConfigError            (also ValueError) bad configuration, refused at load
        ├── SpeakerProtocolError          (also ValueError) malformed message from the wire
        │   ├── FrameError                serial frame: bad CRC, length or address
        │   └── SignatureError            HMAC missing or wrong
        ├── MediaIntegrityError           box side: SHA-256 mismatch or clip not stored
        └── UnknownBoxError               (also LookupError) no such box is registered

Foreign errors (OSError, serial.SerialException, drivers.mqtt.MqttError, aiohttp.ClientError) are
mapped at the transport boundary with ``raise ... from``; nothing else escapes the driver.
"""

from __future__ import annotations


class SpeakerError(Exception):
    """Base of every error raised by ``drivers.speaker``."""


class SpeakerRetryableError(SpeakerError):
    """A transient failure: the same command may succeed later."""


class SpeakerPermanentError(SpeakerError):
    """A failure that a retry of the same input cannot fix."""


class SpeakerConnectionError(SpeakerRetryableError, ConnectionError):
    """A link (TCP socket, serial port, MQTT broker) could not be opened or was lost."""


class SpeakerTimeoutError(SpeakerRetryableError, TimeoutError):
    """A box or broker did not answer within the configured time."""


class BoxOfflineError(SpeakerRetryableError):
    """The addressed box is not connected on any link."""


class MediaDownloadError(SpeakerRetryableError):
    """Audio could not be downloaded (network error, HTTP error status, size limit)."""


class DownloadInterruptedError(MediaDownloadError):
    """A download failed in a way that may pass (no connection, or HTTP 429, 500, 502, 503 or
    504); ``retry_after``: the seconds the server asked the box to wait, if it said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BoxStorageError(SpeakerRetryableError):
    """The box's state directory cannot be written (disk full, read-only)."""


class SpeakerConfigError(SpeakerPermanentError, ValueError):
    """Configuration is invalid; the message names the field and what is wrong."""


class SpeakerProtocolError(SpeakerPermanentError, ValueError):
    """A message from the wire is malformed: not JSON, a missing field, a wrong type."""


class FrameError(SpeakerProtocolError):
    """A serial frame is damaged: bad CRC, impossible length, unknown kind."""


class SignatureError(SpeakerProtocolError):
    """A message's HMAC is missing or does not match the key of its sender or target."""


class MediaIntegrityError(SpeakerPermanentError):
    """Audio does not match its SHA-256, or a stored clip is missing."""


class UnknownBoxError(SpeakerPermanentError, LookupError):
    """No box with this id is registered with the hub."""
