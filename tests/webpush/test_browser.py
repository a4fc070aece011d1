"""Web push in headless Chromium: the subscription page registers its service worker and
subscribes; the channel's push goes to the push-service stand-in, which decrypts it and hands
it to that service worker through the DevTools protocol; the worker shows the notification and
posts the ack, and the delivery becomes confirmed. The alert page renders with its map.
Screenshots are kept in ``test-artifacts/``.

Chromium cannot reach a real push service here, so the page's ``PushManager`` is given a
subscription at the stand-in (with keys the stand-in holds) before the page loads; everything
after that is the browser's own.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.cap import MsgType, Status
from broadcaster.config import parse_config
from broadcaster.service import BroadcasterService
from tests.conftest import REPO
from tests.core.support import make_alert, wait_until_complete
from tests.webpush.cdp import HeadlessChromium, Page
from tests.webpush.conftest import DEMO_DIVISIONS, HUADE, ZHUOZI, ZHUOZI_TOWNSHIP
from tests.webpush.pushservice import PushServiceStandIn, ReceivedPush

ARTIFACTS = REPO / "test-artifacts"

FAKE_PUSH_MANAGER = """
(() => {
  const given = %s;
  const key = "stand-in-subscription";
  const make = (options) => ({
    endpoint: given.endpoint,
    options,
    toJSON: () => given,
    unsubscribe: async () => { localStorage.removeItem(key); return true; },
  });
  PushManager.prototype.subscribe = async function (options) {
    localStorage.setItem(key, "1");
    return make(options);
  };
  PushManager.prototype.getSubscription = async function () {
    return localStorage.getItem(key) ? make({}) : null;
  };
})();
"""

WAIT_FOR_STATE = """
new Promise((resolve) => {
  const wanted = %s;
  const status = document.getElementById("status");
  const check = () => wanted.includes(document.body.dataset.state)
    && (resolve(document.body.dataset.state + ": " + status.textContent), true);
  if (!check()) new MutationObserver(check).observe(document.body, {attributes: true});
})
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, BroadcasterService]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    registry = tmp_path / "targets.json"
    registry.write_text("[]")
    data: dict[str, Any] = {
        "server": {"data_dir": str(tmp_path / "data"), "public_url": base},
        "registry": {"divisions": str(DEMO_DIVISIONS), "targets": str(registry)},
        "dispatcher": {"idle_poll_seconds": 0.05},
        "channels": {
            "webpush": {
                "type": "webpush",
                "vapid_subject": "mailto:duty@example.cn",
                "allow_http_endpoints": True,
                "allow_private_endpoints": True,
            }
        },
    }
    service = BroadcasterService(parse_config(data, base_dir=tmp_path, source=None))
    test_server = TestServer(make_app(service), host="127.0.0.1", port=port)
    await test_server.start_server()
    yield base, service
    await test_server.close()


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[HeadlessChromium]:
    chromium = HeadlessChromium(tmp_path / "profile")
    await chromium.start()
    yield chromium
    await chromium.close()


async def phone_screen(page: Page) -> None:
    metrics = {"width": 412, "height": 880, "deviceScaleFactor": 1, "mobile": True}
    await page.send("Emulation.setDeviceMetricsOverride", **metrics)


async def wait_for_state(page: Page, *states: str) -> str:
    return str(await page.evaluate(WAIT_FOR_STATE % json.dumps(list(states))))


async def test_subscribe_receive_ack_and_open_the_alert_page(
    server: tuple[str, BroadcasterService],
    browser: HeadlessChromium,
    push_service: PushServiceStandIn,
) -> None:
    base, service = server
    client = browser.client
    assert client is not None
    await client.send("Browser.grantPermissions", origin=base, permissions=["notifications"])
    page = await browser.new_page()
    for domain in ("Page", "Runtime", "ServiceWorker"):
        await page.send(f"{domain}.enable")
    await phone_screen(page)
    subscription = push_service.subscriber("browser")
    await page.send(
        "Page.addScriptToEvaluateOnNewDocument", source=FAKE_PUSH_MANAGER % json.dumps(subscription)
    )

    await page.navigate(f"{base}/channels/webpush/")
    assert (await wait_for_state(page, "ready", "error")).startswith("ready")
    scope = f"{base}/channels/webpush/"
    registration = await client.event(
        "ServiceWorker.workerVersionUpdated",
        lambda e: any(
            v["scriptURL"] == f"{scope}sw.js" and v["status"] == "activated"
            for v in e["params"]["versions"]
        ),
    )
    registration_id = next(
        v["registrationId"]
        for v in registration["params"]["versions"]
        if v["scriptURL"] == f"{scope}sw.js"
    )

    await page.evaluate(
        f"""(() => {{
        const county = document.getElementById("county");
        county.value = "{ZHUOZI}";
        county.dispatchEvent(new Event("change"));
        document.getElementById("township").value = "{ZHUOZI_TOWNSHIP}";
        document.querySelector("input[value=en]").checked = true;
        document.getElementById("subscribe").click();
        }})()"""
    )
    state = await wait_for_state(page, "subscribed", "error")
    assert state.startswith("subscribed"), state
    assert "黄沟镇" in state
    await page.screenshot(ARTIFACTS / "webpush-subscribe.png")
    [target] = await service.database.run(service.targets.for_channel, "webpush")
    assert target.division == ZHUOZI_TOWNSHIP and target.languages == ("zh-CN", "en")

    async def deliver_to_browser(push: ReceivedPush) -> None:
        await page.send(
            "ServiceWorker.deliverPushMessage",
            origin=base,
            registrationId=registration_id,
            data=json.dumps(push.payload, ensure_ascii=False),
        )

    push_service.on_push = deliver_to_browser
    original = make_alert("browser-1")
    result = await service.submit(original, origin="test")
    summary = await wait_until_complete(service, result.alert_id, timeout=20)
    assert summary == {"webpush": {"confirmed": 1}}
    notifications = await page.evaluate(
        """navigator.serviceWorker.ready
          .then((r) => r.getNotifications())
          .then((all) => all.map((n) => ({title: n.title, body: n.body, data: n.data})))"""
    )
    [shown] = notifications
    assert shown["title"] == "卓资县暴雪橙色预警"
    assert shown["data"]["url"] == f"{base}/alerts/{result.alert_id}"
    assert "请减少外出" in shown["body"]

    update = make_alert("browser-2", msg_type=MsgType.UPDATE, references=[original])
    updated = await service.submit(update, origin="test")
    assert await wait_until_complete(service, updated.alert_id, timeout=20) == {
        "webpush": {"confirmed": 1}
    }
    [replaced] = await page.evaluate(
        """navigator.serviceWorker.ready
          .then((r) => r.getNotifications())
          .then((all) => all.map((n) => ({title: n.title, data: n.data})))"""
    )
    assert replaced["title"] == "【更新】卓资县暴雪橙色预警"
    assert replaced["data"]["alert"] == updated.alert_id

    await page.navigate(shown["data"]["url"])
    drawn = await page.evaluate("document.querySelectorAll('#area-map .area').length")
    assert drawn >= 1
    assert await page.evaluate("document.querySelector('h1').textContent") == "卓资县暴雪橙色预警"
    await page.screenshot(ARTIFACTS / "webpush-alert-page.png")

    await page.navigate(f"{base}/channels/webpush/")
    assert (await wait_for_state(page, "subscribed", "ready", "error")).startswith("subscribed")
    assert await page.evaluate("document.getElementById('township').value") == ZHUOZI_TOWNSHIP
    await page.evaluate(
        f"""(() => {{
        const county = document.getElementById("county");
        county.value = "{HUADE}";
        county.dispatchEvent(new Event("change"));
        document.body.dataset.state = "changing";
        document.getElementById("subscribe").click();
        }})()"""
    )
    state = await wait_for_state(page, "subscribed", "error")
    assert "化德县" in state, state
    [moved] = await service.database.run(service.targets.for_channel, "webpush")
    assert moved.id == target.id and moved.division == HUADE

    await page.evaluate("document.getElementById('unsubscribe').click()")
    assert (await wait_for_state(page, "unsubscribed", "error")).startswith("unsubscribed")
    assert await service.database.run(service.targets.for_channel, "webpush") == []


async def test_exercise_alert_page_shows_its_banner(
    server: tuple[str, BroadcasterService], browser: HeadlessChromium
) -> None:
    base, service = server
    polygon = [(40.95, 112.45), (40.95, 112.65), (40.80, 112.65), (40.80, 112.45), (40.95, 112.45)]
    alert = make_alert("browser-ex", status=Status.EXERCISE, polygon=polygon)
    result = await service.submit(alert, origin="test", allow_empty=True)
    page = await browser.new_page()
    await page.send("Page.enable")
    await phone_screen(page)
    await page.navigate(f"{base}/alerts/{result.alert_id}")
    banner = await page.evaluate("document.querySelector('.banner.not-real').innerText")
    assert "EXERCISE" in banner and "演练" in banner
    assert await page.evaluate("document.querySelectorAll('#area-map polygon.area').length") == 2
    await page.screenshot(ARTIFACTS / "webpush-exercise-page.png")
