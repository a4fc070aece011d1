"""RFC 8291 encryption (the RFC's own test vector, and decryption by ``http_ece``) and RFC 8292
VAPID keys and tokens."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from broadcaster.errors import ChannelError
from channels.webpush.ece import (
    MAX_PLAINTEXT,
    PayloadTooLargeError,
    PushKeyError,
    b64url_decode,
    b64url_encode,
    encrypt,
)
from channels.webpush.vapid import (
    MAX_AUDIENCES,
    VapidKeyError,
    VapidSigner,
    load_or_create_key,
    parse_private_key,
)
from tests.webpush.conftest import ChannelFactory
from tests.webpush.pushservice import SubscriberKeys

# RFC 8291 Appendix A.
RFC_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC_AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
RFC_UA_PUBLIC = (
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
)
RFC_AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
RFC_SALT = "DGv6ra1nlYgDCS1FRnbzlw"
RFC_BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmY"
    "WAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgS"
    "xsj_Qulcy4a-fN"
)


def test_rfc8291_appendix_a_vector() -> None:
    body = encrypt(
        RFC_PLAINTEXT,
        RFC_UA_PUBLIC,
        RFC_AUTH,
        salt=b64url_decode(RFC_SALT),
        sender_key=parse_private_key(RFC_AS_PRIVATE),
    )
    assert b64url_encode(body) == RFC_BODY


@pytest.mark.parametrize("size", [0, 1, 1000, MAX_PLAINTEXT])
def test_http_ece_decrypts_what_we_encrypt(size: int) -> None:
    keys = SubscriberKeys()
    plaintext = os.urandom(size)
    body = encrypt(plaintext, keys.p256dh, b64url_encode(keys.auth))
    assert len(body) <= 4096
    clear = http_ece.decrypt(
        body, private_key=keys.private_key, auth_secret=keys.auth, version="aes128gcm"
    )
    assert clear == plaintext


def test_each_message_has_its_own_key_and_salt() -> None:
    keys = SubscriberKeys()
    one = encrypt(b"same", keys.p256dh, b64url_encode(keys.auth))
    two = encrypt(b"same", keys.p256dh, b64url_encode(keys.auth))
    assert one[:16] != two[:16] and one[21:86] != two[21:86]


def test_too_large_and_bad_keys_are_refused() -> None:
    keys = SubscriberKeys()
    auth = b64url_encode(keys.auth)
    with pytest.raises(PayloadTooLargeError, match="3993"):
        encrypt(b"x" * (MAX_PLAINTEXT + 1), keys.p256dh, auth)
    with pytest.raises(PushKeyError, match="65-byte"):
        encrypt(b"x", b64url_encode(b"\x04" + b"\x01" * 10), auth)
    with pytest.raises(PushKeyError, match="not a point"):
        encrypt(b"x", b64url_encode(b"\x04" + b"\x01" * 64), auth)
    with pytest.raises(PushKeyError, match="16 bytes"):
        encrypt(b"x", keys.p256dh, b64url_encode(b"short"))
    with pytest.raises(PushKeyError, match="base64url"):
        encrypt(b"x", "***", auth)


def _verify(header: str) -> dict[str, object]:
    token, key = header.removeprefix("vapid t=").split(", k=")
    head, body, signature = token.split(".")
    raw = b64url_decode(signature)
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
    der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    public.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    assert json.loads(b64url_decode(head)) == {"typ": "JWT", "alg": "ES256"}
    claims: dict[str, object] = json.loads(b64url_decode(body))
    return claims


def test_vapid_token_is_signed_for_the_origin_and_cached() -> None:
    now = [1_800_000_000.0]
    signer = VapidSigner(
        ec.generate_private_key(ec.SECP256R1()), "mailto:duty@example.cn", clock=lambda: now[0]
    )
    header = signer.authorization("https://fcm.example.com/wp/abc?x=1")
    claims = _verify(header)
    assert claims == {
        "aud": "https://fcm.example.com",
        "exp": 1_800_000_000 + 12 * 3600,
        "sub": "mailto:duty@example.cn",
    }
    assert header.endswith(f"k={signer.public_key}")
    assert signer.authorization("https://fcm.example.com/wp/other") == header
    assert _verify(signer.authorization("https://push.example.org/1"))["aud"] == (
        "https://push.example.org"
    )
    now[0] += 11.5 * 3600
    assert signer.authorization("https://fcm.example.com/wp/abc") != header


def test_vapid_headers_are_kept_for_the_origins_used_most_recently() -> None:
    # Anyone may subscribe an endpoint on an origin of their own: the cache must not grow
    # with them. An origin that falls out is signed for again (a later exp tells).
    now = [1_800_000_000.0]
    signer = VapidSigner(
        ec.generate_private_key(ec.SECP256R1()), "mailto:duty@example.cn", clock=lambda: now[0]
    )
    fcm = signer.authorization("https://fcm.example.com/wp/1")
    first = signer.authorization("https://p0.example.net/wp/1")
    for n in range(1, MAX_AUDIENCES - 1):
        signer.authorization(f"https://p{n}.example.net/wp/1")
    assert len(signer._headers) == MAX_AUDIENCES
    now[0] += 1
    assert signer.authorization("https://fcm.example.com/wp/2") == fcm  # used again: kept
    signer.authorization("https://one-more.example.net/wp/1")  # full: p0 goes, not fcm
    assert len(signer._headers) == MAX_AUDIENCES
    assert signer.authorization("https://fcm.example.com/wp/3") == fcm
    again = signer.authorization("https://p0.example.net/wp/2")
    assert _verify(first)["exp"] == 1_800_000_000 + 12 * 3600
    assert _verify(again)["exp"] == 1_800_000_001 + 12 * 3600


def test_generated_key_is_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "vapid.pem"
    first = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = load_or_create_key(path)
    assert first.private_numbers() == second.private_numbers()


def test_unreadable_keys_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(VapidKeyError, match="PEM"):
        parse_private_key("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----")
    with pytest.raises(VapidKeyError, match="neither PEM nor"):
        parse_private_key("!!!")


async def test_channel_generates_its_key_once_and_never_logs_it(
    make_channel: ChannelFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    channel = make_channel()
    await channel.start()
    public = channel.public_key
    await channel.stop()
    pem = (tmp_path / "webpush-push" / "vapid.pem").read_text()
    secret_line = pem.splitlines()[1]
    assert "generated one" in caplog.text
    assert secret_line not in caplog.text
    again = make_channel()
    await again.start()
    assert again.public_key == public
    await again.stop()


async def test_configured_key_is_used_and_masked(make_channel: ChannelFactory) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    scalar = b64url_encode(key.private_numbers().private_value.to_bytes(32, "big"))
    channel = make_channel(vapid_private_key=scalar)
    assert scalar not in repr(channel.config) and scalar not in channel.config.model_dump_json()
    await channel.start()
    assert channel.public_key == VapidSigner(key, "mailto:x@example.cn").public_key
    await channel.stop()
    broken = make_channel(vapid_private_key="secret*key*material")
    with pytest.raises(ChannelError, match="VAPID key") as error:
        await broken.start()
    chain: BaseException | None = error.value
    while chain is not None:
        assert "secret" not in str(chain) and "material" not in str(chain)
        chain = chain.__cause__
