"""Channel extension points: endpoints mounted at /channels/<name>/ and self-enrolled targets
that a registry reload and a restart keep, and that the channel lists with its registry targets."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.service import BroadcasterService
from tests.core.support import make_alert, make_config, village_targets


async def test_enrolled_targets_are_planned_and_survive_restart(tmp_path: Path) -> None:
    channels = {
        "enrol": {"type": "tests.core.support:EnrollingChannel"},
        "other": {"type": "tests.core.support:RecordingChannel"},
    }
    targets = village_targets("enrol", 2) + village_targets("other", 1)
    config = make_config(tmp_path, channels, targets)
    phone = {"id": "phone-1", "name": "resident", "division": "150921001001", "address": "x"}
    for round_ in range(2):
        service = BroadcasterService(config)
        server = TestServer(make_app(service))
        await server.start_server()
        try:
            if round_ == 0:
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(server.make_url("/channels/enrol/enrol"), json=phone) as r,
                ):
                    assert r.status == 201
            result = await service.submit(make_alert(f"a{round_}"), origin="test")
            assert result.planned == {"enrol": 3, "other": 1}  # enrol: 2 from the registry
            rows = await service.database.run(service.outbox.deliveries, result.alert_id)
            assert "phone-1" in {r["target_id"] for r in rows}
            directory = service.channels["enrol"].context.targets
            assert directory is not None
            listed = [t.id for t in await directory.all()]
            assert listed == [*sorted(t["id"] for t in targets[:2]), "phone-1"]
        finally:
            await server.close()
