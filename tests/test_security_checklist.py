"""One test per line of the security checklist (../shared/notes/security-checklist.md).

Each test is named after its line and quotes it; each drives the real code (the service,
the MCP tools, the HTTP server, the store) rather than re-reading a constant. Deeper
coverage of most lines lives elsewhere (test_tokens, test_service, test_tools,
test_oversight, test_abuse, test_audit, test_http, test_fuzz_tools, test_token_model);
this file lets a reader see every requirement held in one place.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from email.header import decode_header, make_header
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import jwt
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from reset_mcp.app import App, build_app
from reset_mcp.audit import verify_chain
from reset_mcp.clock import FakeClock
from reset_mcp.config import Settings, load_settings
from reset_mcp.deps import Caller
from reset_mcp.errors import ConfigError, PermissionDeniedError
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.mail.mime import build_message
from reset_mcp.tokens import _derive, jti_hash
from tests.conftest import CHROME_UA, SECRET, reset_args, text_of_eml, token_from, token_from_text

ROOT = Path(__file__).parent.parent
INVALID = "This reset link is invalid or has expired."


def _inp(**over: str) -> ResetInput:
    base = {"email": "alice@example.com", "user_id": "u-1", "ip": "198.51.100.7", "user_agent": CHROME_UA}
    base.update(over)
    return ResetInput(**base)  # type: ignore[arg-type]


async def _issue(app: App, backend: MemoryBackend, **over: str) -> str:
    result = await app.service.request_password_reset(_inp(**over))
    assert result.status == "sent", result
    return token_from([m for m in backend.sent if m.kind == "password_reset"][-1])


def _segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(head))), json.loads(base64.urlsafe_b64decode(pad(body)))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_signed(header: dict[str, Any], payload: dict[str, Any], key: bytes, digest: Any = hashlib.sha256) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{_b64(hmac.new(key, signing_input.encode(), digest).digest())}"


async def _audit(app: App, action: str | None = None) -> list[Any]:
    async with app.store.transaction() as tx:
        entries = await tx.list_audit(limit=10_000)
    return [e for e in entries if action is None or e.action == action]


async def _refusal_reasons(app: App) -> list[str]:
    return [e.detail.get("reason") for e in await _audit(app, "verify_refused")]


async def _refused_precisely(app: App, token: str, *reasons: str) -> None:
    """The end user hears the one generic answer; the audit log has the precise reason."""
    answer = await app.service.verify_reset_token(token)
    assert not answer.valid and answer.reason == INVALID
    assert (await _refusal_reasons(app))[-1] in reasons


@pytest.fixture
async def gated(
    settings_factory: Callable[..., Settings], clock: FakeClock
) -> AsyncIterator[tuple[App, MemoryBackend]]:
    backend = MemoryBackend()
    async with build_app(settings_factory(oversight_mode="gated"), clock=clock, backend=backend) as app:
        yield app, backend


# === Tokens ===========================================================================


async def test_tokens_signed_jwt_hs256_algorithm_pinned(app: App, backend: MemoryBackend) -> None:
    """ "Signed JWT, HS256 (or EdDSA) with the algorithm list pinned on decode"."""
    token = await _issue(app, backend)
    header, _ = _segments(token)
    assert header["alg"] == "HS256" and header["typ"] == "JWT"
    # Re-signed with the very same key under HS512: a decoder trusting the header would accept it.
    key = _derive(SECRET.encode(), "jwt")
    _, payload = _segments(token)
    await _refused_precisely(
        app, _hand_signed({**header, "alg": "HS512"}, payload, key, hashlib.sha512), "bad_signature"
    )
    assert (await app.service.verify_reset_token(token)).valid  # the genuine one still is


async def test_tokens_alg_none_rejected(app: App, backend: MemoryBackend) -> None:
    """ "`alg: none` ... rejected"."""
    header, payload = _segments(await _issue(app, backend))
    unsigned = jwt.encode(payload, None, algorithm="none", headers={"kid": header["kid"]})  # type: ignore[arg-type]
    await _refused_precisely(app, unsigned, "bad_signature")
    await _refused_precisely(app, unsigned.rstrip("."), "malformed")


async def test_tokens_different_algorithm_rejected(app: App, backend: MemoryBackend) -> None:
    """ "a different algorithm ... rejected"."""
    from cryptography.hazmat.primitives.asymmetric import ec

    header, payload = _segments(await _issue(app, backend))
    private = ec.generate_private_key(ec.SECP256R1())
    es256 = jwt.encode(payload, private, algorithm="ES256", headers={"kid": header["kid"]})
    await _refused_precisely(app, es256, "bad_signature")
    hs384 = _hand_signed({**header, "alg": "HS384"}, payload, _derive(SECRET.encode(), "jwt"), hashlib.sha384)
    await _refused_precisely(app, hs384, "bad_signature")


async def test_tokens_public_key_as_hmac_secret_rejected(app: App, backend: MemoryBackend) -> None:
    """ "a public key used as an HMAC secret ... rejected" (the RS256 -> HS256 confusion)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    header, payload = _segments(await _issue(app, backend))
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    # An RS256 token, and the classic forgery: HS256 with the public key's PEM as the secret.
    rs256 = jwt.encode(payload, private, algorithm="RS256", headers={"kid": header["kid"]})
    await _refused_precisely(app, rs256, "bad_signature")
    await _refused_precisely(app, _hand_signed(header, payload, pem), "bad_signature")


async def test_tokens_unknown_crit_header_rejected(app: App, backend: MemoryBackend) -> None:
    """ "an unknown `crit` header: all rejected"."""
    header, payload = _segments(await _issue(app, backend))
    key = _derive(SECRET.encode(), "jwt")  # correctly signed: only the header is wrong
    # pyjwt refuses an unsupported `crit` while reading the header (malformed); our own
    # check after it (bad_signature) holds should a pyjwt version let it through.
    await _refused_precisely(
        app, _hand_signed({**header, "crit": ["x-policy"], "x-policy": 1}, payload, key), "malformed", "bad_signature"
    )


def test_tokens_pyjwt_2_13_or_newer() -> None:
    """ "Use pyjwt 2.13 or newer"."""
    installed = tuple(int(p) for p in re.findall(r"\d+", version("pyjwt"))[:2])
    assert installed >= (2, 13), version("pyjwt")
    assert '"pyjwt>=2.13"' in (ROOT / "pyproject.toml").read_text()  # and a fresh install cannot pick older


async def test_tokens_required_claims_exp_iat_jti_sub_purpose_kid(app: App, backend: MemoryBackend) -> None:
    """ "Required claims: `exp`, `iat`, `jti` (...), `sub`, a purpose / audience claim so a reset token
    is no other kind of token, and `kid` for key rotation"."""
    token = await _issue(app, backend)
    header, payload = _segments(token)
    assert {"exp", "iat", "jti", "sub", "purpose"} <= payload.keys() and payload["purpose"] == "password_reset"
    assert header["kid"] == app.signer.kid
    key = _derive(SECRET.encode(), "jwt")
    # The genuine token minus one claim, correctly signed, its jti still live in the store:
    # without each check it would pass.
    for claim, reason in (
        ("exp", "malformed"),
        ("iat", "malformed"),
        ("sub", "malformed"),
        ("purpose", "wrong_purpose"),
    ):
        stripped = {k: v for k, v in payload.items() if k != claim}
        await _refused_precisely(app, _hand_signed(header, stripped, key), reason)
    await _refused_precisely(
        app, _hand_signed(header, {**payload, "purpose": "email_verification"}, key), "wrong_purpose"
    )
    await _refused_precisely(app, _hand_signed({"alg": "HS256", "typ": "JWT"}, payload, key), "bad_signature")  # no kid
    assert (await app.service.verify_reset_token(token)).valid


async def test_tokens_jti_128_plus_bits_from_secrets(app: App, backend: MemoryBackend) -> None:
    """ "`jti` (128+ bits from `secrets`)": an HMAC (256 bits) of the request id, itself 128 random bits."""
    results = [await app.service.request_password_reset(_inp(user_id=f"u-{i}")) for i in range(3)]
    tokens = [token_from(m) for m in backend.sent if m.kind == "password_reset"]
    jtis = [_segments(t)[1]["jti"] for t in tokens]
    assert len(set(jtis)) == 3
    for result, jti in zip(results, jtis, strict=True):
        assert len(base64.urlsafe_b64decode(jti + "=")) * 8 == 256
        # "req_", 11 hex digits of milliseconds (time order), then 128 random bits.
        random_part = result.request_id.removeprefix("req_")[11:]
        assert len(base64.urlsafe_b64decode(random_part + "=" * (-len(random_part) % 4))) * 8 >= 128
        assert jti == app.signer.jti_for(result.request_id)  # derived under the secret...
        assert jti != app.signer.__class__("another-secret-0123456789-abcdefghijkl").jti_for(result.request_id)


async def test_tokens_kid_sign_with_newest_key_verify_with_ring(
    settings_factory: Callable[..., Settings], clock: FakeClock
) -> None:
    """ "`kid` for key rotation (sign with the newest key, verify with the ring, like Django's
    SECRET_KEY_FALLBACKS)"."""
    new_secret = "rotated-secret-abcdefghijklmnopqrstuvwxyz-0123456789"
    backend = MemoryBackend()
    async with build_app(settings_factory(), clock=clock, backend=backend) as old_app:
        await old_app.service.request_password_reset(_inp())
        old_token, old_kid = token_from(backend.sent[-1]), old_app.signer.kid
    rotated = settings_factory(secret=new_secret, secret_fallbacks=SECRET)
    async with build_app(rotated, clock=clock, backend=backend) as app:
        assert (await app.service.verify_reset_token(old_token)).valid  # the fallback still verifies
        await app.service.request_password_reset(_inp(user_id="u-2", email="bob@example.com"))
        new_header, _ = _segments(token_from(backend.sent[-1]))
        assert new_header["kid"] == app.signer.kid != old_kid  # signed with the newest
    async with build_app(settings_factory(secret=new_secret), clock=clock, backend=backend) as retired:
        await _refused_precisely(retired, old_token, "bad_signature")  # fallback dropped: old links die


async def test_expiry_configurable_15_to_60_minutes(
    settings_factory: Callable[..., Settings], clock: FakeClock
) -> None:
    """ "Expiry configurable 15 to 60 minutes"."""
    for minutes, phrase in ((15, "15 minutes"), (37, "37 minutes"), (60, "1 hour")):
        backend = MemoryBackend()
        async with build_app(settings_factory(token_ttl_minutes=minutes), clock=clock, backend=backend) as app:
            result = await app.service.request_password_reset(_inp())
            assert result.expires_at == clock.now() + timedelta(minutes=minutes)
            token = token_from(backend.sent[0])
            assert f"expires in {phrase}" in backend.sent[0].text
            clock.advance(minutes=minutes, seconds=-1)
            assert (await app.service.verify_reset_token(token)).valid
            clock.advance(seconds=1)
            await _refused_precisely(app, token, "expired")


@pytest.mark.parametrize("minutes", [0, 14, 61, 1440])
def test_expiry_outside_15_to_60_rejected_with_clear_error(
    settings_factory: Callable[..., Settings], minutes: int
) -> None:
    """ "(reject values outside the allowed range with a clear error)"."""
    with pytest.raises(ConfigError) as err:
        settings_factory(token_ttl_minutes=minutes)
    assert "RESET_MCP_TOKEN_TTL_MINUTES" in str(err.value) and "between 15 and 60" in str(err.value)


async def test_server_side_record_keyed_by_hash_of_jti(app: App, backend: MemoryBackend) -> None:
    """ "Server-side record keyed by a hash of `jti`"."""
    token = await _issue(app, backend)
    jti = _segments(token)[1]["jti"]
    async with app.store.transaction() as tx:
        record = await tx.get_token(hashlib.sha256(jti.encode()).hexdigest())
        assert record is not None and record.jti_hash == jti_hash(jti) != jti
        assert await tx.get_token(jti) is None  # not findable by the plaintext
    async with app.store.transaction() as tx:
        await tx.revoke_token(record.jti_hash, app.clock.now(), "test")  # the row is what decides
    await _refused_precisely(app, token, "revoked")


async def test_plaintext_token_never_stored_or_logged(
    app: App, backend: MemoryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """ "the plaintext never stored or logged"."""
    caplog.set_level(logging.DEBUG)
    token = await _issue(app, backend)
    await app.service.verify_reset_token(token)
    await app.service.consume_reset_token(token)
    await app.service.verify_reset_token(token)
    jti, signature = _segments(token)[1]["jti"], token.rsplit(".", 1)[1]
    raw = b"".join(p.read_bytes() for p in Path(app.settings.data_dir).glob("reset-mcp.db*"))
    for secret in (token, jti, signature):
        assert secret.encode() not in raw
        assert secret not in caplog.text
    assert all(jti not in json.dumps(e.detail) for e in await _audit(app))


async def test_one_time_use_enforced_atomically(app: App, backend: MemoryBackend) -> None:
    """ "One-time use enforced atomically (`UPDATE ... WHERE consumed_at IS NULL`, row count checked).
    Known races: Keycloak #37231 and CVE-2026-4325, a Devise race fixed in gumroad PR #6615,
    authentik PR #19967"."""
    token = await _issue(app, backend)
    wins: list[bool] = []

    async def consume() -> None:
        wins.append((await app.service.consume_reset_token(token)).consumed)

    async with anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(consume)
    assert wins.count(True) == 1 and len(wins) == 30
    assert [m.kind for m in backend.sent].count("password_changed") == 1
    # The store's own contract, the row count deciding: a second conditional update loses.
    async with app.store.transaction() as tx:
        record = await tx.get_token(jti_hash(_segments(token)[1]["jti"]))
        assert record is not None and record.consumed_at is not None
        assert await tx.consume_token(record.jti_hash, app.clock.now()) is False


async def test_new_request_revokes_earlier_outstanding_tokens(app: App, backend: MemoryBackend) -> None:
    """ "A new request revokes the user's earlier outstanding tokens (Keycloak #40631)"."""
    first = await _issue(app, backend)
    other_user = await _issue(app, backend, email="bob@example.com", user_id="u-2")
    second = await _issue(app, backend)
    await _refused_precisely(app, first, "revoked")
    assert (await app.service.verify_reset_token(second)).valid
    assert (await app.service.verify_reset_token(other_user)).valid  # another user's link is untouched


async def test_completed_reset_revokes_all_outstanding_tokens(app: App, backend: MemoryBackend) -> None:
    """ "A completed reset revokes all of them"."""
    # Two live links for one account: one per user id sharing the address (a new request
    # would revoke a same-user-id link by itself).
    one = await _issue(app, backend, user_id="u-1")
    two = await _issue(app, backend, user_id="u-1-alias")
    result = await app.service.consume_reset_token(one)
    assert result.consumed and result.other_tokens_revoked == 1
    await _refused_precisely(app, two, "revoked")


async def test_token_bound_to_password_state_password_change_kills_it(app: App, backend: MemoryBackend) -> None:
    """ "A token can be bound to a fingerprint of the user's current password state (as Django does)
    so a password change kills it".

    reset-mcp holds no passwords (no user table), so it cannot fingerprint one. A password
    change kills outstanding links instead through the two events it sees: a completed
    reset (above), and the app reporting a change made elsewhere with revoke_reset_tokens.
    """
    token = await _issue(app, backend)
    changed = await app.service.revoke_reset_tokens(email=None, user_id="u-1", reason="password changed in settings")
    assert changed.revoked == 1
    await _refused_precisely(app, token, "revoked")
    entry = (await _audit(app, "tokens_revoked"))[-1]
    assert entry.detail == {"count": 1, "reason": "password changed in settings"}


async def test_failed_verifications_throttled_nist_100(http_server: Any) -> None:
    """ "Failed verifications are throttled (NIST: at most 100 consecutive failures)" - over REST,
    where the app's reset page verifies: 10 failures per client in 5 minutes, then 429."""
    headers = http_server.auth("app")
    url = f"{http_server.url}/v1/tokens/verify"
    async with httpx.AsyncClient() as http:
        for _ in range(10):
            r = await http.post(url, json={"token": "a.b.c", "ip": "203.0.113.200"}, headers=headers)
            assert r.status_code == 200 and r.json()["valid"] is False
        limited = await http.post(url, json={"token": "a.b.c", "ip": "203.0.113.200"}, headers=headers)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0


async def test_failed_verifications_throttled_nist_100_over_mcp(client: Client, clock: FakeClock) -> None:
    """ "Failed verifications are throttled (NIST: at most 100 consecutive failures)" - over MCP,
    per caller: the 101st check in a row is refused with a clear tool error, until a cooldown."""
    for i in range(100):
        tool = "verify_reset_token" if i % 2 else "consume_reset_token"  # both count
        result = await client.call_tool(tool, {"token": f"a.b.c{i}"})
        assert not result.is_error, (i, result.content)
    refused = await client.call_tool("verify_reset_token", {"token": "a.b.c"})
    assert refused.is_error and "too many failed token checks" in refused.content[0].text  # type: ignore[union-attr]
    clock.advance(minutes=16)
    assert not (await client.call_tool("verify_reset_token", {"token": "a.b.c"})).is_error


# === Links and pages ======================================================================


async def test_links_reset_link_only_from_configured_template_never_host_header(http_server: Any) -> None:
    """ "The reset link is built only from a configured URL template; never from a Host header
    (Django CVE-2012-4520 and many since)"."""
    hostile = {
        "Authorization": f"Bearer {http_server.key('agent')}",
        "Host": f"localhost:{http_server.url.rsplit(':', 1)[1]}",  # allowed, but not the template's host
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "http",
        "Forwarded": "host=evil.example;proto=http",
        "X-Original-URL": "https://evil.example/reset",
    }
    async with (
        httpx2.AsyncClient(headers=hostile, timeout=30) as http,
        Client(streamable_http_client(f"{http_server.url}/mcp", http_client=http)) as client,
    ):
        result = await client.call_tool("request_password_reset", reset_args(email="hosty@example.com"))
        assert result.structured_content["status"] == "sent"  # type: ignore[index]
    eml = next(p for p in http_server.settings.effective_outbox_dir.glob("*.eml") if "hosty" in p.read_text())
    text = text_of_eml(eml)
    token = token_from_text(text)
    links = re.findall(r"https?://[^\s\"<>]+", text)
    assert f"https://app.example.com/reset?token={token}" in links
    assert not any("evil" in link or "localhost" in link for link in links)


def test_reset_page_guidance_in_readme_get_never_consumes() -> None:
    """ "Guidance for the app's reset page, shipped in the README: GET renders a form and never
    consumes (mail scanners such as Outlook Safe Links prefetch links: authelia #2994)"."""
    page = _readme_reset_page()
    assert "**GET** renders the form and **never consumes**" in page and "Safe" in page and "prefetch" in page


def test_reset_page_guidance_in_readme_post_consumes() -> None:
    """ "POST consumes"."""
    page = _readme_reset_page()
    assert "**POST**" in page and "consume_reset_token" in page


def test_reset_page_guidance_in_readme_referrer_policy_no_referrer() -> None:
    """ "`Referrer-Policy: no-referrer`"."""
    assert "Referrer-Policy: no-referrer" in _readme_reset_page()


def test_reset_page_guidance_in_readme_token_out_of_analytics_and_access_logs() -> None:
    """ "keep the token out of analytics and access logs"."""
    assert "keep the token out of analytics and access logs" in _readme_reset_page()


async def test_verify_never_consumes_so_a_prefetching_scanner_cannot_burn_the_link(
    app: App, backend: MemoryBackend
) -> None:
    """The behaviour behind the README's GET guidance: what a GET calls (verify) never uses the link."""
    token = await _issue(app, backend)
    for _ in range(5):  # a scanner, a preview, the user's own click
        assert (await app.service.verify_reset_token(token)).valid
    assert (await app.service.consume_reset_token(token)).consumed


def _readme_reset_page() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Your reset page")
    return " ".join(readme[start : readme.index("\n## ", start + 1)].split())  # line wraps don't matter


# === Email content ========================================================================

HOSTILE_NAME = '<b onmouseover="x">Eve</b> & Co'
HOSTILE_LOCATION = "<img src=x onerror=alert(1)> Berlin"


async def test_email_user_fields_escaped_in_html(app: App, backend: MemoryBackend) -> None:
    """ "Every user-supplied field (name, browser, location) is escaped in HTML"."""
    ua = "Mozilla/5.0 (<script>alert(1)</script>) Gecko/20100101 <svg onload=x>/1.0"
    await _issue(app, backend, name=HOSTILE_NAME, location=HOSTILE_LOCATION, user_agent=ua, ip="81.2.69.160")
    html = backend.sent[-1].html
    for raw in ("<b ", "<img", "<script", "<svg", 'onmouseover="x">'):
        assert raw not in html
    # Markup is no name and no place: both are left out (issue 20), so nothing of them shows.
    assert "onmouseover" not in html and "Hello," in backend.sent[-1].text and "img src" not in html
    # What is accepted is escaped: an apostrophe in a name and in a place.
    await _issue(app, backend, name="Eve O'Brien", location="L'Aquila, Italy", ip="81.2.69.160")
    html = backend.sent[-1].html
    assert "Eve O&#39;Brien" in html and "L&#39;Aquila, Italy" in html and "O'Brien" not in html


async def test_email_user_fields_stripped_of_crlf_in_headers(app: App, backend: MemoryBackend, client: Client) -> None:
    """ "... and stripped of CR/LF in headers"."""
    for field in ("name", "location", "locale", "timezone", "user_id"):
        for brk in ("\r\n", "\n", "\r", "\u2028", "\x85"):
            result = await client.call_tool(
                "request_password_reset", reset_args(**{field: f"x{brk}Bcc: e@example.com"})
            )
            assert result.is_error and field in result.content[0].text  # type: ignore[union-attr]
    assert backend.sent == []  # refused, not repaired: nothing was sent
    # What is accepted never reaches a header: To is the bare address, the rest is fixed.
    await _issue(app, backend, name="Eve \u202eBcc: x", location="Berlin \u200b\ufeff")
    message = build_message(backend.sent[-1])
    for name, value in message.items():
        assert "\r" not in value and "\n" not in str(make_header(decode_header(value))), name
    assert "Bcc" not in message and message["To"] == "alice@example.com"


async def test_email_subject_never_carries_user_input_unescaped(app: App, backend: MemoryBackend) -> None:
    """ "subjects never carry user input unescaped"."""
    await _issue(app, backend)
    plain = backend.sent[-1].subject
    await _issue(app, backend, name=HOSTILE_NAME, location=HOSTILE_LOCATION, user_id="u-9", email="eve@example.com")
    assert backend.sent[-1].subject == plain == "Reset your Acme password"  # nothing of the request in it


async def test_addresses_validated_with_email_validator(app: App, backend: MemoryBackend, client: Client) -> None:
    """ "Addresses validated with email-validator"."""
    for bad in ("not-an-email", "a@b", "a@localhost", "@example.com", "a@@example.com", "a@example..com"):
        result = await client.call_tool("request_password_reset", reset_args(email=bad))
        assert result.is_error and "email: not a valid email address" in result.content[0].text  # type: ignore[union-attr]
    await _issue(app, backend, email="Alice.Smith@EXAMPLE.COM")
    assert backend.sent[-1].to == "alice.smith@example.com"  # normalised the way email-validator does


async def test_address_header_injection_rejected(client: Client, backend: MemoryBackend) -> None:
    """ "header injection attempts rejected"."""
    for bad in (
        "alice@example.com\r\nBcc: eve@example.com",
        "alice@example.com\nBcc: eve@example.com",
        "alice@example.com%0d%0aBcc:eve@example.com",
        "Alice <alice@example.com>, eve@example.com",
        "alice@example.com\x00eve@example.com",
    ):
        result = await client.call_tool("request_password_reset", reset_args(email=bad))
        assert result.is_error and "email" in result.content[0].text  # type: ignore[union-attr]
    assert backend.sent == []


async def test_email_says_who_asked_ip_browser_location_time(app: App, backend: MemoryBackend) -> None:
    """ "The email says who asked (IP, browser, approximate location, time)"."""
    await _issue(app, backend, location="Lyon, France", ip="81.2.69.160")
    mail = backend.sent[-1]
    for fact in ("81.2.69.160", "Chrome 131 on Windows 10", "Lyon, France", "January 1, 2026, 12:00 PM UTC"):
        assert fact in mail.text and fact in mail.html


async def test_email_says_how_long_the_link_lives(app: App, backend: MemoryBackend) -> None:
    """ "... how long the link lives"."""
    await _issue(app, backend)
    assert "expires in 15 minutes (January 1, 2026, 12:15 PM UTC)" in backend.sent[-1].text


async def test_email_says_what_to_do_if_it_was_not_you(app: App, backend: MemoryBackend) -> None:
    """ "... and what to do if it was not you"."""
    await _issue(app, backend)
    text = backend.sent[-1].text
    assert "Not you?" in text and "If you did not ask for this, ignore this email" in text


async def test_password_changed_notice_after_completed_reset(app: App, backend: MemoryBackend) -> None:
    """ "After a completed reset, a "your password was changed" notice goes to the owner (NIST
    800-63B requires a notification on every recovery)"."""
    token = await _issue(app, backend)
    result = await app.service.consume_reset_token(token, ip="203.0.113.50", user_agent=CHROME_UA)
    assert result.consumed and result.notice_status == "sent"
    notice = backend.sent[-1]
    assert notice.kind == "password_changed" and notice.to == "alice@example.com"
    assert notice.subject == "Your Acme password was changed" and "203.0.113.50" in notice.text
    assert token not in notice.text


# === Abuse ================================================================================


async def test_rate_limit_per_account_rate_limited_with_retry_after(
    app: App, backend: MemoryBackend, clock: FakeClock
) -> None:
    """ "Rate limits per account ... answered with a clear `rate_limited` status and `retry_after`"."""
    for i in range(5):
        assert (await app.service.request_password_reset(_inp(ip=f"203.0.113.{i}"))).status == "sent"
        clock.advance(minutes=1)
    limited = await app.service.request_password_reset(_inp(ip="203.0.113.99"))
    assert limited.status == "rate_limited" and "account" in (limited.reason or "")
    assert limited.retry_after == 55 * 60 + 1  # when the oldest of the five leaves the hour
    assert [m.kind for m in backend.sent].count("password_reset") == 5
    clock.advance(seconds=limited.retry_after)
    assert (await app.service.request_password_reset(_inp(ip="203.0.113.99"))).status == "sent"


async def test_rate_limit_per_ip_mail_bombing(app: App, backend: MemoryBackend) -> None:
    """ "... and per IP (mail-bombing)"."""
    for i in range(20):
        result = await app.service.request_password_reset(_inp(email=f"victim{i}@example.com", user_id=f"u{i}"))
        assert result.status == "sent"
    limited = await app.service.request_password_reset(_inp(email="victim99@example.com", user_id="u99"))
    assert limited.status == "rate_limited" and "IP" in (limited.reason or "") and limited.retry_after
    assert not any(m.to == "victim99@example.com" for m in backend.sent)


async def test_more_than_3_requests_an_hour_raise_the_risk(app: App) -> None:
    """ "More than 3 requests in an hour ... raise the risk"."""
    risks = [(await app.service.request_password_reset(_inp())).risk for _ in range(4)]
    assert risks == ["low", "low", "low", "high"]


async def test_requests_from_several_ips_raise_the_risk(app: App) -> None:
    """ "... or requests from several IPs, raise the risk"."""
    risks = [(await app.service.request_password_reset(_inp(ip=f"203.0.113.{i}"))).risk for i in (1, 2, 3)]
    assert risks == ["low", "low", "elevated"]


async def test_one_security_alert_per_window_not_per_attempt(
    app: App, backend: MemoryBackend, clock: FakeClock
) -> None:
    """ "... and send one security alert per window (not one per attempt)"."""
    answers = [await app.service.request_password_reset(_inp()) for _ in range(8)]  # 5 sent, 3 rate limited
    assert [a.alert_queued for a in answers].count(True) == 1
    assert [m.kind for m in backend.sent].count("security_alert") == 1
    clock.advance(minutes=61)
    for _ in range(4):
        await app.service.request_password_reset(_inp())
    assert [m.kind for m in backend.sent].count("security_alert") == 2  # the next window's one


async def test_unknown_account_same_answer_shape(app: App, client: Client) -> None:
    """ "The answer for an unknown account is the same as for a known one (shape ...)".

    reset-mcp has no user table: the app names the account, so "unknown" can only mean an
    address never seen before. Known (with history) and never-seen answer alike.
    """
    for _ in range(2):
        await app.service.request_password_reset(_inp())
    known = await client.call_tool("request_password_reset", reset_args(ip="203.0.113.1"))
    unknown = await client.call_tool("request_password_reset", reset_args(email="ghost@example.net", user_id="ghost"))
    k, u = known.structured_content, unknown.structured_content
    assert k is not None and u is not None and k.keys() == u.keys()
    assert (k["status"], k["risk"], k["delivery"]["status"]) == (u["status"], u["risk"], u["delivery"]["status"])


async def test_unknown_account_same_timing_as_far_as_possible(app: App, backend: MemoryBackend) -> None:
    """ "(... and, as far as possible, timing)".

    With no user table there is no lookup whose absence could be timed: both paths do the
    same work. Asserted as the same writes, the same email, and no gross time difference.
    """

    async def counts() -> dict[str, int]:
        async with app.store.transaction() as tx:
            row = await tx._one(  # type: ignore[attr-defined]
                "SELECT (SELECT COUNT(*) FROM sends) AS s, (SELECT COUNT(*) FROM tokens) AS t, "
                "(SELECT COUNT(*) FROM outbox) AS o, (SELECT COUNT(*) FROM events) AS e, "
                "(SELECT COUNT(*) FROM audit) AS a"
            )
        return dict(row)

    async def timed(inp: ResetInput) -> tuple[float, dict[str, int]]:
        before = await counts()
        start = time.perf_counter()
        await app.service.request_password_reset(inp)
        elapsed = time.perf_counter() - start
        after = await counts()
        return elapsed, {k: after[k] - before[k] for k in after}

    await _issue(app, backend)  # alice is known from here on
    known, unknown = [], []
    for i in range(12):
        t1, d1 = await timed(_inp(ip=f"203.0.113.{i}", email="alice@example.com", user_id="u-1"))
        t2, d2 = await timed(_inp(ip=f"203.0.113.{i}", email=f"new{i}@example.net", user_id=f"n{i}"))
        app.clock.advance(minutes=61)  # type: ignore[attr-defined]
        assert d1 == d2
        known.append(t1)
        unknown.append(t2)
    # The fastest of each: the intrinsic cost, free of a shared box's noise (fsyncs, other
    # processes). A user lookup, were there one, would show as a constant gap.
    assert 0.5 < min(known) / min(unknown) < 2


# === Oversight and access =====================================================================


async def test_held_send_cannot_be_approved_with_the_requesting_credentials(gated: tuple[App, MemoryBackend]) -> None:
    """ "A send that policy holds for approval cannot be approved with the same credentials that
    requested it (MultiMail separates send and oversight keys for this reason)"."""
    app, backend = gated
    requester = Caller("key:agent01", frozenset({"send", "approve"}))
    held = await app.service.request_password_reset(_inp(), requester)
    assert held.status == "pending_approval" and held.approval_id and backend.sent == []
    with pytest.raises(PermissionDeniedError, match="credentials that requested it"):
        await app.service.approvals.approve(held.approval_id, requester)
    assert backend.sent == []
    decision = await app.service.approvals.approve(held.approval_id, Caller("key:human01", frozenset({"approve"})))
    assert decision.status == "approved" and [m.kind for m in backend.sent] == ["password_reset"]


async def test_http_transports_require_authentication(http_server: Any) -> None:
    """ "HTTP transports require authentication ..."."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with httpx.AsyncClient() as http:
        for path in ("/mcp", "/v1/tokens/verify", "/v1/tokens/consume", "/v1/approvals"):
            for headers in ({}, {"Authorization": "Bearer rmcp_abcdefgh_wrong"}, {"Authorization": "Basic eDp5"}):
                method = http.get if path == "/v1/approvals" else http.post
                kwargs = {} if path == "/v1/approvals" else {"json": body}
                r = await method(f"{http_server.url}{path}", headers=headers, **kwargs)
                assert r.status_code == 401, (path, headers)
                assert r.headers["www-authenticate"].startswith("Bearer")


async def test_http_transports_require_scopes(http_server: Any) -> None:
    """ "... with scopes"."""
    async with mcp_http_client(http_server, "agent") as agent:
        names = {t.name for t in (await agent.list_tools()).tools}
        assert "verify_reset_token" not in names and "request_password_reset" in names
        refused = await agent.call_tool("consume_reset_token", {"token": "a.b.c"})
        assert refused.is_error and "'redeem' scope" in refused.content[0].text  # type: ignore[union-attr]
    async with mcp_http_client(http_server, "app") as page:
        refused = await page.call_tool("request_password_reset", reset_args())
        assert refused.is_error and "'send' scope" in refused.content[0].text  # type: ignore[union-attr]
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{http_server.url}/v1/tokens/verify", json={"token": "t"}, headers=http_server.auth("agent")
        )
        assert r.status_code == 403 and "'redeem'" in r.json()["error"]
        r = await http.get(f"{http_server.url}/v1/approvals", headers=http_server.auth("app"))
        assert r.status_code == 403 and "'approve'" in r.json()["error"]


async def test_loopback_bind_keeps_sdk_dns_rebinding_protection(http_server: Any) -> None:
    """ "loopback binds keep the SDK's DNS-rebinding protection"."""
    auth = http_server.auth("app")
    async with httpx.AsyncClient() as http:
        for path in ("/mcp", "/v1/tokens/verify"):
            r = await http.post(f"{http_server.url}{path}", json={}, headers={**auth, "Host": "attacker.example"})
            assert r.status_code == 421
            r = await http.post(
                f"{http_server.url}{path}", json={}, headers={**auth, "Origin": "http://attacker.example"}
            )
            assert r.status_code == 403
        ok = await http.post(f"{http_server.url}/v1/tokens/verify", json={"token": "t"}, headers=auth)
        assert ok.status_code == 200


async def test_public_bind_needs_explicit_allowed_hosts_and_origins(tmp_path: Path) -> None:
    """ "a public bind needs explicit allowed hosts and origins"."""
    from reset_mcp.cli.main import serve_settings
    from reset_mcp.server.http.app import build_http_app
    from reset_mcp.server.serve import serve

    public = {"data_dir": tmp_path, "secret": SECRET, "http_host": "0.0.0.0", "trust_caller_recipient": True}
    for missing in ({}, {"allowed_hosts": "reset.example.com"}, {"allowed_origins": "https://app.example.com"}):
        with pytest.raises(ConfigError, match="RESET_MCP_ALLOWED_HOSTS"):
            build_http_app(load_settings(**public, **missing))
    args = argparse.Namespace(transport="streamable-http", host=None, port=None, stateless=False, workers=None)
    assert serve(serve_settings(load_settings(**public), args), args.transport) == 2  # the CLI refuses to start
    named = load_settings(**public, allowed_hosts="reset.example.com", allowed_origins="https://app.example.com")
    asgi = build_http_app(named)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://reset.example.com") as http:
        foreign = await http.post("/v1/tokens/verify", json={}, headers={"Host": "127.0.0.1:8765"})
        assert foreign.status_code == 421  # even loopback is not allowed unless named
        wrong_origin = await http.post("/v1/tokens/verify", json={}, headers={"Origin": "https://evil.example"})
        assert wrong_origin.status_code == 403
        named_host = await http.post("/v1/tokens/verify", json={}, headers={"Origin": "https://app.example.com"})
        assert named_host.status_code == 401  # past the host check, stopped by authentication


async def test_audit_log_records_who_asked(app: App) -> None:
    """ "An append-only audit log records every decision: who asked ..."."""
    result = await app.service.request_password_reset(_inp(), Caller("key:agent77"))
    decision = next(e for e in await _audit(app, "decision") if e.subject == result.request_id)
    assert decision.actor == "key:agent77"


async def test_audit_log_records_what_the_policy_said(gated: tuple[App, MemoryBackend]) -> None:
    """ "... what the policy said ..."."""
    app, _ = gated
    held = await app.service.request_password_reset(_inp(), Caller("key:agent77"))
    entry = next(e for e in await _audit(app, "decision") if e.subject == held.request_id)
    assert entry.detail["mode"] == "gated" and entry.detail["outcome"] == "hold"
    assert entry.detail["approval_id"] == held.approval_id and entry.detail["reason"]


async def test_audit_log_records_who_approved(gated: tuple[App, MemoryBackend]) -> None:
    """ "... who approved ..."."""
    app, _ = gated
    held = await app.service.request_password_reset(_inp(), Caller("key:agent77"))
    assert held.approval_id
    await app.service.approvals.approve(
        held.approval_id, Caller("key:human42", frozenset({"approve"})), "checked with the user"
    )
    entry = next(e for e in await _audit(app, "approval_approved") if e.subject == held.request_id)
    assert entry.actor == "key:human42" and entry.detail["reason"] == "checked with the user"


async def test_audit_log_records_what_was_delivered(app: App, backend: MemoryBackend) -> None:
    """ "... what was delivered"."""
    result = await app.service.request_password_reset(_inp())
    entry = next(e for e in await _audit(app, "delivery_sent") if e.subject == result.request_id)
    assert entry.actor == "dispatcher"
    assert entry.detail["kind"] == "password_reset" and entry.detail["recipient"] == "alice@example.com"
    assert entry.detail["attempts"] == 1 and entry.detail["outbox_id"].startswith("msg_")
    assert token_from(backend.sent[0]) not in json.dumps(entry.detail)


async def test_audit_log_is_append_only_edits_and_deletions_detected(app: App, backend: MemoryBackend) -> None:
    """ "An append-only audit log" - a hash chain: an edited or deleted entry is detected."""
    token = await _issue(app, backend)
    await app.service.consume_reset_token(token)
    entries = await _audit(app)
    assert len(entries) >= 4 and verify_chain(entries, app.signer.audit_ring).ok
    async with app.store.transaction() as tx:
        await tx._exec("UPDATE audit SET actor = 'someone-else' WHERE seq = 2")  # type: ignore[attr-defined]
    report = verify_chain(await _audit(app), app.signer.audit_ring)
    assert not report.ok and report.bad_seq == 2 and "altered" in (report.problem or "")
    async with app.store.transaction() as tx:
        await tx._exec("DELETE FROM audit WHERE seq = 2")  # type: ignore[attr-defined]
    report = verify_chain(await _audit(app), app.signer.audit_ring)
    assert not report.ok and "missing" in (report.problem or "")


# === the HTTP server the access lines need ========================================================


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.httpserver import running_server

    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("checklist-http"),
        secret=SECRET,
        email_backend="outbox",
        from_address="auth@acme.test",
        product_name="Acme",
        reset_url="https://app.example.com/reset?token={token}",
        worker_poll_seconds=0.2,
    )
    keys = {"agent": ["send"], "app": ["redeem"], "admin": ["approve"]}
    with running_server(settings, keys) as server:
        yield server


def mcp_http_client(server: Any, key: str) -> Any:
    from tests.httpserver import mcp_client

    return mcp_client(server.url, server.key(key))
