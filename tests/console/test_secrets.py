"""No page, log line or audit entry shows a secret: passwords, session cookies, API tokens.

The test walks the console as admin and officers (add an officer, issue an API token, draft,
approve, read every page, JSON and the event stream), records every log record at DEBUG level
and every audit entry, and searches all of it for each secret. The one place a secret may
appear is the page that issues an API token, once; it is checked to be there, and nowhere else.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from broadcaster.audit import AuditLog
from tests.console.support import (
    PASSWORDS,
    ConsoleClient,
    compose_form,
    console_config,
    console_server,
    demo_targets,
)

NEW_PASSWORD = "brand new officer password"


async def test_no_page_log_or_audit_entry_shows_a_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    channels = {"speaker": {"type": "tests.console.support:BoxChannel"}}
    config = console_config(tmp_path, channels, demo_targets("speaker"), audio_preview=False)
    seen: list[str] = []
    async with console_server(config) as server:
        admin, drafter, newcomer = (ConsoleClient(server) for _ in range(3))
        try:
            seen.append((await admin.login("admin"))[1])
            status, page = await admin.post(
                "/console/users",
                {"username": "newcomer", "role": "approver", "password": NEW_PASSWORD},
            )
            assert status == 200
            seen.append(page)
            status, issued = await admin.post("/console/tokens", {"name": "county-feed"})
            token = issued.split('<code class="token">')[1].split("</code>")[0]
            assert token.startswith("bct_")
            seen.append((await drafter.login("drafter"))[1])
            seen.append((await newcomer.login("newcomer", NEW_PASSWORD))[1])
            status, page = await drafter.post("/console/compose", compose_form())
            seen.append(page)
            alert_id = drafter.last_path.rsplit("/", 1)[1]
            status, page = await newcomer.post(
                f"/console/alerts/{alert_id}/approve", {"reason": "ok"}
            )
            assert status == 200
            seen.append(page)
            for path in (
                "/console/",
                "/console/compose",
                "/console/approvals",
                "/console/devices",
                "/console/users",
                "/console/tokens",
                "/console/audit",
                f"/console/alerts/{alert_id}",
                f"/console/alerts/{alert_id}/deliveries",
            ):
                seen.append((await admin.get(path))[1])
            async with admin.session.get(
                f"/console/alerts/{alert_id}/stream", headers={"Accept": "text/event-stream"}
            ) as response:
                seen.append((await response.content.readline()).decode())
                seen.append((await response.content.readline()).decode())
            cookies = [
                c.value
                for client in (admin, drafter, newcomer)
                for c in client.session.cookie_jar
                if c.key == "bc_session"
            ]
            assert len(cookies) == 3
            log = AuditLog(server.service.database)
            entries = await server.service.database.run(log.entries, limit=1000)
            dumped = json.dumps([e.to_json() for e in entries], ensure_ascii=False)
            stored = await server.service.database.run(
                server.service.database.query,
                "SELECT * FROM officers o, console_sessions s, api_token_grants g",
            )
        finally:
            for client in (admin, drafter, newcomer):
                await client.close()
    assert any(e.action == "apitoken.create" for e in entries)
    assert any(e.action == "user.add" for e in entries)
    logs = "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records)
    secrets = [*PASSWORDS.values(), NEW_PASSWORD, token, *cookies]
    haystacks = {"pages": "\n".join(seen), "logs": logs, "audit": dumped, "database": repr(stored)}
    for name, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a secret appears in the {name}"
    assert token in issued  # shown once, on the page that issued it
