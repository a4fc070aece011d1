"""A real HTTP receiver for webhook tests: records requests, answers as told, verifies HMACs.

Used in-process (``WebhookReceiver``) and as a separate process for the crash test
(``python -m tests.core.receiver PORT FILE DELAY``: appends each verified request to FILE).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

SECRET = b"webhook-test-secret"


def signature_ok(body: bytes, header: str | None) -> bool:
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)


@dataclass
class WebhookReceiver:
    """Answers per path: a list of statuses to give in turn (the last one repeats)."""

    script: dict[str, list[int]] = field(default_factory=dict)
    delay: float = 0.0
    retry_after: str | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{name}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not signature_ok(body, request.headers.get("X-Broadcaster-Signature")):
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.delay:
            await asyncio.sleep(self.delay)
        name = request.match_info["name"]
        statuses = self.script.get(name, [200])
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        self.received.append(
            {
                "path": name,
                "key": request.headers["Idempotency-Key"],
                "body": json.loads(body),
                "status": status,
            }
        )
        headers = {"Retry-After": self.retry_after} if status == 429 and self.retry_after else {}
        return web.Response(status=status, headers=headers)


def main() -> None:
    port, out, delay = int(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if not signature_ok(body, request.headers.get("X-Broadcaster-Signature")):
            return web.Response(status=401)
        await asyncio.sleep(delay)
        with out.open("a", encoding="utf-8") as fh:
            fh.write(request.headers["Idempotency-Key"] + "\n")
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{name}", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
