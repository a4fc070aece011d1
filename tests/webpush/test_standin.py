"""The push-service stand-in is the oracle of the push tests, so it must accept every sender that
RFC 8030, RFC 8291 and RFC 8292 allow and refuse the rest: pywebpush, an implementation
independent of the channel's, is one such sender; tokens built here with ``cryptography`` cover
what pywebpush does not vary (parameter layout, no ``sub``, no body)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush_async

from channels.webpush.ece import encrypt
from tests.webpush.pushservice import PushRefused, PushServiceStandIn, b64e, vapid_params

SERVER_KEY = ec.generate_private_key(ec.SECP256R1())
SERVER_PUBLIC = b64e(
    SERVER_KEY.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
)


def token(
    claims: dict[str, Any], *, alg: str = "ES256", key: ec.EllipticCurvePrivateKey = SERVER_KEY
) -> str:
    """An ES256 JWT signed here with ``cryptography`` (RFC 7515 §3.4 raw r‖s signature)."""
    head = b64e(json.dumps({"typ": "JWT", "alg": alg}).encode())
    body = b64e(json.dumps(claims).encode())
    der = key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{head}.{body}.{b64e(r.to_bytes(32) + s.to_bytes(32))}"


def claims_for(origin: str, **extra: Any) -> dict[str, Any]:
    return {"aud": origin, "exp": int(time.time()) + 3600, **extra}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_pywebpush_push_is_accepted_and_decrypted(
    push_service: PushServiceStandIn, session: aiohttp.ClientSession
) -> None:
    vapid = Vapid02()
    vapid.generate_keys()
    message = {"title": "卓资县暴雪橙色预警", "level": "orange"}
    response = await webpush_async(
        push_service.subscriber("phone"),
        data=json.dumps(message, ensure_ascii=False),
        vapid_private_key=vapid,
        vapid_claims={"sub": "mailto:duty@example.cn"},
        ttl=600,
        aiohttp_session=session,
    )
    assert not isinstance(response, str) and response.status == 201
    assert push_service.rejected == []
    [push] = push_service.received
    assert push.payload == message
    assert push.headers["TTL"] == "600" and "Topic" not in push.headers
    assert push.claims["sub"] == "mailto:duty@example.cn"
    assert push.claims["aud"] == push_service.base_url


async def test_pywebpush_push_without_data_is_accepted(
    push_service: PushServiceStandIn, session: aiohttp.ClientSession
) -> None:
    vapid = Vapid02()
    vapid.generate_keys()
    response = await webpush_async(
        push_service.subscriber("phone"),
        vapid_private_key=vapid,
        vapid_claims={"sub": "https://alerts.example.cn"},
        aiohttp_session=session,
    )
    assert not isinstance(response, str) and response.status == 201
    [push] = push_service.received
    assert push.data == b"" and push.payload is None and push.headers["TTL"] == "0"


async def test_pywebpush_learns_of_a_refusal(
    push_service: PushServiceStandIn, session: aiohttp.ClientSession
) -> None:
    vapid = Vapid02()
    vapid.generate_keys()
    with pytest.raises(WebPushException, match="400"):
        await webpush_async(
            push_service.subscriber("phone"),
            data="x",
            vapid_private_key=vapid,
            vapid_claims={"sub": "mailto:duty@example.cn"},
            headers={"Urgency": "urgent"},
            aiohttp_session=session,
        )
    assert push_service.rejected == ["Urgency is not very-low, low, normal or high"]


@pytest.mark.parametrize(
    "layout",
    [
        "vapid t={t},k={k}",
        "vapid t={t}, k={k}",
        "Vapid k={k}, t={t}",
        'VAPID T="{t}" , K = "{k}"',
        "vapid  t={t},, k={k} ",
    ],
)
def test_every_legal_authorization_layout_is_accepted(
    push_service: PushServiceStandIn, layout: str
) -> None:
    origin = "http://127.0.0.1:8443"
    header = layout.format(t=token(claims_for(origin, sub="mailto:a@example.cn")), k=SERVER_PUBLIC)
    assert push_service.check_vapid(header, origin)["sub"] == "mailto:a@example.cn"


def test_token_without_sub_is_accepted(push_service: PushServiceStandIn) -> None:
    origin = "http://127.0.0.1:8443"
    header = f"vapid t={token(claims_for(origin))}, k={SERVER_PUBLIC}"
    assert "sub" not in push_service.check_vapid(header, origin)


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("Bearer abc", "no VAPID Authorization"),
        ("vapid t={t}", "no VAPID Authorization"),
        ("vapid t={t}, t={t}, k={k}", "no VAPID Authorization"),
        ("vapid t={t} k={k}", "no VAPID Authorization"),
        ("vapid t=a.b, k={k}", "malformed"),
        ("vapid t={t}, k=AAAA", "malformed"),
        ("vapid t={hs256}, k={k}", "not an ES256 JWT"),
        ("vapid t={other}, k={k}", "bad JWT signature"),
        ("vapid t={elsewhere}, k={k}", "aud https://push.example.com is not"),
        ("vapid t={expired}, k={k}", "exp not within 24 h"),
        ("vapid t={far}, k={k}", "exp not within 24 h"),
    ],
)
def test_what_no_conforming_sender_sends_is_refused(
    push_service: PushServiceStandIn, header: str, problem: str
) -> None:
    origin = "http://127.0.0.1:8443"
    now = int(time.time())
    filled = header.format(
        t=token(claims_for(origin)),
        k=SERVER_PUBLIC,
        hs256=token(claims_for(origin), alg="HS256"),
        other=token(claims_for(origin), key=ec.generate_private_key(ec.SECP256R1())),
        elsewhere=token(claims_for("https://push.example.com")),
        expired=token({"aud": origin, "exp": now - 1}),
        far=token({"aud": origin, "exp": now + 25 * 3600}),
    )
    with pytest.raises(PushRefused, match=problem):
        push_service.check_vapid(filled, origin)


@pytest.mark.parametrize(
    ("headers", "body", "answer"),
    [
        ({"ttl": "60", "content-encoding": "AES128GCM", "topic": "a-b_C9"}, True, 201),
        ({"TTL": "0", "Urgency": "very-low"}, False, 201),
        ({"Content-Encoding": "aes128gcm"}, True, "TTL missing"),
        ({"TTL": "1.5", "Content-Encoding": "aes128gcm"}, True, "TTL missing"),
        ({"TTL": "60", "Content-Encoding": "aesgcm"}, True, "Content-Encoding"),
        ({"TTL": "60"}, True, "Content-Encoding"),
        ({"TTL": "60", "Content-Encoding": "aes128gcm", "Topic": "x" * 33}, True, "Topic"),
        ({"TTL": "60", "Content-Encoding": "aes128gcm", "Topic": "a b"}, True, "Topic"),
    ],
)
async def test_header_names_in_any_case_and_optional_headers(
    push_service: PushServiceStandIn,
    session: aiohttp.ClientSession,
    headers: dict[str, str],
    body: bool,
    answer: int | str,
) -> None:
    subscription = push_service.subscriber("phone")
    origin = push_service.base_url
    vapid = f"vapid t={token(claims_for(origin))},k={SERVER_PUBLIC}"
    data = encrypt(b'{"n": 1}', subscription["keys"]["p256dh"], subscription["keys"]["auth"])
    async with session.post(
        subscription["endpoint"],
        data=data if body else b"",
        headers={"authorization": vapid, **headers},
    ) as response:
        if answer == 201:
            assert response.status == 201 and push_service.rejected == []
            assert push_service.received[0].payload == ({"n": 1} if body else None)
        else:
            assert response.status == 400 and str(answer) in await response.text()
            assert push_service.received == []


async def test_a_body_that_does_not_decrypt_is_refused(
    push_service: PushServiceStandIn, session: aiohttp.ClientSession
) -> None:
    subscription = push_service.subscriber("phone")
    vapid = f"vapid t={token(claims_for(push_service.base_url))},k={SERVER_PUBLIC}"
    headers = {"Authorization": vapid, "TTL": "60", "Content-Encoding": "aes128gcm"}
    async with session.post(
        subscription["endpoint"], data=b"\x00" * 200, headers=headers
    ) as response:
        assert response.status == 400 and "does not decrypt" in await response.text()


def test_vapid_params_lower_cases_names_and_unquotes() -> None:
    assert vapid_params('vapid T="a\\"b", k=c') == {"t": 'a"b', "k": "c"}
    assert vapid_params("WebPush abc") is None
