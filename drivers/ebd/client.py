"""The HTTP exchange of EBD packages (GD/J 083-2018 as deployed): one multipart POST.

The request is ``multipart/form-data`` with exactly one file part named ``file`` holding
``EBDT_<EBDID>.tar`` (``application/octet-stream``). The synchronous answer is HTTP 200 whose
body is the reply tar (its name in ``Content-Disposition`` is not needed: the tar is read
from the body). Connection problems, timeouts and HTTP
errors (5xx, 408, 429) become ``EbdLinkError`` / ``EbdTimeoutError`` (retryable); any other
4xx is ``EbdConfigError`` (the URL is wrong or the peer does not take packages there); a reply
that is not a valid package becomes ``EbdFormatError``. ``read_posted_package`` is the
receiving side: the ``file`` part of a POST, within the size limit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from drivers.ebd.errors import EbdConfigError, EbdFormatError, EbdLinkError, EbdTimeoutError
from drivers.ebd.exchange import Incoming, read_incoming
from drivers.ebd.package import MAX_PACKAGE_BYTES, Package, write_package
from drivers.ebd.signature import Verifier


@dataclass(frozen=True)
class PostTimeouts:
    """Seconds to connect and for the whole exchange (deployed peers: 5-60 and 300)."""

    connect: float = 10.0
    total: float = 60.0


async def post_package(
    session: aiohttp.ClientSession,
    url: str,
    package: Package,
    verifier: Verifier | None,
    timeouts: PostTimeouts | None = None,
) -> Incoming:
    """POST ``package`` to ``url`` and return the checked reply package."""
    timeouts = timeouts or PostTimeouts()
    form = aiohttp.FormData()
    form.add_field(
        "file",
        write_package(package),
        filename=package.tar_name,
        content_type="application/octet-stream",
    )
    timeout = aiohttp.ClientTimeout(total=timeouts.total, sock_connect=timeouts.connect)
    try:
        async with session.post(url, data=form, timeout=timeout) as response:
            status = response.status
            if 400 <= status < 500 and status not in (408, 429):
                raise EbdConfigError(f"{url}: HTTP {status} {response.reason}; check the URL")
            if status != 200:
                raise EbdLinkError(f"{url}: HTTP {status} {response.reason}")
            body = await response.content.read(MAX_PACKAGE_BYTES + 1)
    except TimeoutError as error:
        raise EbdTimeoutError(f"{url}: no answer within {timeouts.total} s") from error
    except aiohttp.InvalidURL as error:
        raise EbdConfigError(f"{url!r} is not a usable URL") from error
    except aiohttp.ClientError as error:
        raise EbdLinkError(f"{url}: {error.__class__.__name__}: {error}") from error
    if not body:
        raise EbdFormatError("the peer answered with an empty body", "EBDT")
    return await asyncio.to_thread(read_incoming, body, verifier)


async def read_posted_package(request: web.Request) -> bytes:
    """The bytes of the multipart part named ``file`` of a received POST (the deployed form),
    read up to the package size limit and the application's body limit (``client_max_size``,
    which a body sent in chunks, without a length, is not held to otherwise);
    ``EbdFormatError`` when there is no such part or the body is over a limit."""
    limit = min(MAX_PACKAGE_BYTES, request.client_max_size)
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError) as error:
        raise EbdFormatError("the request is not multipart/form-data", "EBDT") from error
    while True:
        part = await reader.next()
        if request.content.total_bytes > limit:
            raise EbdFormatError("the request is over the size limit", "EBDT")
        if part is None:
            raise EbdFormatError("no file part named 'file'", "EBDT", result_code=3)
        if isinstance(part, aiohttp.BodyPartReader) and part.name == "file":
            data = bytearray()
            while chunk := await part.read_chunk():
                data += chunk
                if len(data) > limit:
                    raise EbdFormatError("package is over the size limit", "EBDT")
            return bytes(data)
