"""HTTP email API backends against `httpx.MockTransport` (the real APIs are not reachable).

For every provider: the exact request, the message id read back, and the error
classification (429/5xx/connection -> transient with retry_after, 4xx -> permanent with
the provider's reason and never our key).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from reset_mcp.clock import FakeClock
from reset_mcp.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError
from reset_mcp.mail import OutgoingEmail, open_email_backend
from reset_mcp.mail.http_providers import (
    SIGNATURE_HEADER,
    MailgunBackend,
    PostmarkBackend,
    ResendBackend,
    SendGridBackend,
    WebhookBackend,
    build_http_backend,
    verify_webhook_signature,
)

KEY = "re_live_SUPERSECRETKEY_0123456789"
SECRET = "whsec_test_secret_abcdef"
BEARER = "bearer-token-xyz-987"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLWJ5dGVz"
LINK = f"https://app.example.com/reset?token={JWT}"
MESSAGE_ID = "<r-123.abc@mail.example.com>"
IDEMPOTENCY_KEY = "outbox-42-v1"

Handler = Callable[[httpx.Request], httpx.Response]


def make_email(**overrides: Any) -> OutgoingEmail:
    fields: dict[str, Any] = {
        "message_id": MESSAGE_ID,
        "idempotency_key": IDEMPOTENCY_KEY,
        "kind": "password_reset",
        "from_address": "no-reply@example.com",
        "from_name": "Example Security",
        "to": "alice@example.org",
        "subject": "Reset your password",
        "text": f"Hello Alice,\nReset your password here: {LINK}\n",
        "html": f'<p>Hello Alice,</p><p><a href="{LINK}">Reset your password</a></p>',
        "date": datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
        "headers": {"X-Entity-Ref-ID": "r-123", "Auto-Submitted": "auto-generated"},
    }
    fields.update(overrides)
    return OutgoingEmail(**fields)


class Recorder:
    """A MockTransport handler that records requests and answers with `respond`."""

    def __init__(self, respond: Handler) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


SUCCESS: dict[str, Handler] = {
    "resend": lambda r: httpx.Response(200, json={"id": "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"}),
    "postmark": lambda r: httpx.Response(
        200,
        json={
            "To": "alice@example.org",
            "SubmittedAt": "2026-01-01T12:00:00Z",
            "MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
            "ErrorCode": 0,
            "Message": "OK",
        },
    ),
    "sendgrid": lambda r: httpx.Response(202, headers={"X-Message-Id": "sg-msg-1"}),
    "mailgun": lambda r: httpx.Response(
        200, json={"id": "<20260101.1@mg.example.com>", "message": "Queued. Thank you."}
    ),
    "webhook": lambda r: httpx.Response(200, json={"id": "hook-1"}),
}
EXPECTED_ID = {
    "resend": "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794",
    "postmark": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
    "sendgrid": "sg-msg-1",
    "mailgun": "<20260101.1@mg.example.com>",
    "webhook": "hook-1",
}
PROVIDERS = list(SUCCESS)


def make_backend(kind: str, handler: Handler, clock: FakeClock | None = None) -> Any:
    transport = httpx.MockTransport(handler)
    clock = clock or FakeClock()
    if kind == "resend":
        return ResendBackend(KEY, transport=transport, clock=clock)
    if kind == "postmark":
        return PostmarkBackend(KEY, transport=transport, clock=clock)
    if kind == "sendgrid":
        return SendGridBackend(KEY, transport=transport, clock=clock)
    if kind == "mailgun":
        return MailgunBackend(KEY, "mg.example.com", transport=transport, clock=clock)
    return WebhookBackend(
        "https://hooks.example.net/reset-mail", SECRET, bearer=BEARER, transport=transport, clock=clock
    )


def settings(**overrides: Any) -> SimpleNamespace:
    values: dict[str, Any] = {
        "email_backend": "resend",
        "email_api_key": SecretStr(KEY),
        "email_api_url": None,
        "mailgun_domain": None,
        "webhook_url": None,
        "webhook_secret": None,
        "webhook_bearer": None,
        "postmark_message_stream": "outbound",
    }
    values.update(overrides)
    return SimpleNamespace(**values)


# --- the exact request of each provider --------------------------------------------


async def test_resend_request_and_id() -> None:
    rec = Recorder(SUCCESS["resend"])
    backend = make_backend("resend", rec)
    receipt = await backend.send(make_email())
    await backend.aclose()

    assert receipt.provider_message_id == EXPECTED_ID["resend"]
    req = rec.last
    assert req.method == "POST"
    assert str(req.url) == "https://api.resend.com/emails"
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.headers["Idempotency-Key"] == IDEMPOTENCY_KEY
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(req.content) == {
        "from": "Example Security <no-reply@example.com>",
        "to": ["alice@example.org"],
        "subject": "Reset your password",
        "html": make_email().html,
        "text": make_email().text,
        "headers": {
            "Message-ID": MESSAGE_ID,
            "X-Entity-Ref-ID": "r-123",
            "Auto-Submitted": "auto-generated",
        },
    }


async def test_postmark_request_and_id() -> None:
    rec = Recorder(SUCCESS["postmark"])
    backend = PostmarkBackend(
        KEY, message_stream="password-resets", transport=httpx.MockTransport(rec), clock=FakeClock()
    )
    receipt = await backend.send(make_email())
    await backend.aclose()

    assert receipt.provider_message_id == EXPECTED_ID["postmark"]
    req = rec.last
    assert req.method == "POST"
    assert str(req.url) == "https://api.postmarkapp.com/email"
    assert req.headers["X-Postmark-Server-Token"] == KEY
    assert req.headers["Accept"] == "application/json"
    assert "Authorization" not in req.headers
    assert json.loads(req.content) == {
        "From": "Example Security <no-reply@example.com>",
        "To": "alice@example.org",
        "Subject": "Reset your password",
        "HtmlBody": make_email().html,
        "TextBody": make_email().text,
        "Headers": [
            {"Name": "Message-ID", "Value": MESSAGE_ID},
            {"Name": "X-Entity-Ref-ID", "Value": "r-123"},
            {"Name": "Auto-Submitted", "Value": "auto-generated"},
        ],
        "MessageStream": "password-resets",
    }


async def test_sendgrid_request_and_id_from_header() -> None:
    rec = Recorder(SUCCESS["sendgrid"])
    backend = make_backend("sendgrid", rec)
    receipt = await backend.send(make_email())
    await backend.aclose()

    assert receipt.provider_message_id == "sg-msg-1"
    req = rec.last
    assert req.method == "POST"
    assert str(req.url) == "https://api.sendgrid.com/v3/mail/send"
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert json.loads(req.content) == {
        "personalizations": [{"to": [{"email": "alice@example.org"}]}],
        "from": {"email": "no-reply@example.com", "name": "Example Security"},
        "subject": "Reset your password",
        "content": [
            {"type": "text/plain", "value": make_email().text},
            {"type": "text/html", "value": make_email().html},
        ],
        "headers": {
            "Message-ID": MESSAGE_ID,
            "X-Entity-Ref-ID": "r-123",
            "Auto-Submitted": "auto-generated",
        },
        "custom_args": {
            "kind": "password_reset",
            "message_id": MESSAGE_ID,
            "idempotency_key": IDEMPOTENCY_KEY,
        },
    }


async def test_mailgun_request_and_id() -> None:
    rec = Recorder(SUCCESS["mailgun"])
    backend = make_backend("mailgun", rec)
    receipt = await backend.send(make_email())
    await backend.aclose()

    assert receipt.provider_message_id == "<20260101.1@mg.example.com>"
    req = rec.last
    assert req.method == "POST"
    assert str(req.url) == "https://api.mailgun.net/v3/mg.example.com/messages"
    expected_auth = "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()
    assert req.headers["Authorization"] == expected_auth
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = {k: v for k, [v] in parse_qs(req.content.decode(), strict_parsing=True).items()}
    assert form == {
        "from": "Example Security <no-reply@example.com>",
        "to": "alice@example.org",
        "subject": "Reset your password",
        "text": make_email().text,
        "html": make_email().html,
        "h:Message-Id": MESSAGE_ID,
        "h:X-Entity-Ref-ID": "r-123",
        "h:Auto-Submitted": "auto-generated",
    }


async def test_webhook_request_signature_and_id() -> None:
    clock = FakeClock()
    rec = Recorder(SUCCESS["webhook"])
    backend = make_backend("webhook", rec, clock)
    receipt = await backend.send(make_email())
    await backend.aclose()

    assert receipt.provider_message_id == "hook-1"
    req = rec.last
    assert req.method == "POST"
    assert str(req.url) == "https://hooks.example.net/reset-mail"
    assert req.headers["Authorization"] == f"Bearer {BEARER}"
    assert req.headers["Idempotency-Key"] == IDEMPOTENCY_KEY
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(req.content) == {
        "message_id": MESSAGE_ID,
        "idempotency_key": IDEMPOTENCY_KEY,
        "kind": "password_reset",
        "from": "no-reply@example.com",
        "from_name": "Example Security",
        "to": "alice@example.org",
        "subject": "Reset your password",
        "text": make_email().text,
        "html": make_email().html,
        "headers": {
            "Message-ID": MESSAGE_ID,
            "X-Entity-Ref-ID": "r-123",
            "Auto-Submitted": "auto-generated",
        },
        "date": "2026-01-01T12:00:00+00:00",
    }

    # Reference HMAC, computed here independently of the backend's code.
    parts = dict(p.split("=", 1) for p in req.headers[SIGNATURE_HEADER].split(","))
    assert set(parts) == {"t", "v1"}
    assert int(parts["t"]) == int(clock.now().timestamp())
    reference = hmac.new(SECRET.encode(), parts["t"].encode() + b"." + req.content, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], reference)

    # The receiver-side helper accepts it now and refuses tampering and replays.
    now = clock.now().timestamp()
    header = req.headers[SIGNATURE_HEADER]
    assert verify_webhook_signature(req.content, header, SECRET, now=now)
    assert not verify_webhook_signature(req.content + b" ", header, SECRET, now=now)
    assert not verify_webhook_signature(req.content, header, "other-secret", now=now)
    assert not verify_webhook_signature(req.content, header, SECRET, now=now + 301)
    assert not verify_webhook_signature(req.content, "v1=" + reference, SECRET, now=now)


async def test_webhook_without_bearer_sends_no_authorization() -> None:
    rec = Recorder(lambda r: httpx.Response(204))
    backend = WebhookBackend("https://hooks.example.net/x", SECRET, transport=httpx.MockTransport(rec))
    receipt = await backend.send(make_email())
    await backend.aclose()
    assert receipt.provider_message_id is None
    assert "Authorization" not in rec.last.headers
    assert SIGNATURE_HEADER in rec.last.headers


async def test_our_message_id_wins_over_a_composer_header() -> None:
    rec = Recorder(SUCCESS["resend"])
    backend = make_backend("resend", rec)
    await backend.send(make_email(headers={"message-id": "<other@x>", "X-A": "1"}))
    await backend.aclose()
    assert json.loads(rec.last.content)["headers"] == {"Message-ID": MESSAGE_ID, "X-A": "1"}


async def test_display_name_with_specials_is_quoted() -> None:
    rec = Recorder(SUCCESS["postmark"])
    backend = make_backend("postmark", rec)
    await backend.send(make_email(from_name='Acme, Inc. "Security"'))
    await backend.aclose()
    assert json.loads(rec.last.content)["From"] == '"Acme, Inc. \\"Security\\"" <no-reply@example.com>'


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_retry_sends_the_same_message_id_and_idempotency_key(kind: str) -> None:
    rec = Recorder(SUCCESS[kind])
    backend = make_backend(kind, rec)
    await backend.send(make_email())
    await backend.send(make_email())
    await backend.aclose()
    first, second = rec.requests
    assert first.content == second.content  # same Message-ID, same body on a retry
    if kind in ("resend", "webhook"):
        assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == IDEMPOTENCY_KEY


# --- error classification ----------------------------------------------------------


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_429_with_retry_after_seconds_is_transient(kind: str) -> None:
    backend = make_backend(kind, lambda r: httpx.Response(429, headers={"Retry-After": "7"}, json={}))
    with pytest.raises(TransientDeliveryError) as info:
        await backend.send(make_email())
    await backend.aclose()
    assert info.value.retry_after == 7
    assert "429" in str(info.value)


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_503_is_transient(kind: str) -> None:
    backend = make_backend(kind, lambda r: httpx.Response(503, text="Service Unavailable"))
    with pytest.raises(TransientDeliveryError) as info:
        await backend.send(make_email())
    await backend.aclose()
    assert info.value.retry_after is None
    assert "503" in str(info.value)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("86400", 3600.0),
        ("soon", None),
        (None, None),
    ],
)
async def test_retry_after_parsing_and_cap(header: str | None, expected: float | None) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    backend = make_backend("resend", lambda r: httpx.Response(502, headers=headers))
    with pytest.raises(TransientDeliveryError) as info:
        await backend.send(make_email())
    assert info.value.retry_after == expected


async def test_retry_after_http_date_uses_the_clock() -> None:
    clock = FakeClock()
    when = format_datetime(clock.now() + timedelta(seconds=90), usegmt=True)
    backend = make_backend("sendgrid", lambda r: httpx.Response(429, headers={"Retry-After": when}), clock)
    with pytest.raises(TransientDeliveryError) as info:
        await backend.send(make_email())
    assert info.value.retry_after == 90

    far = format_datetime(clock.now() + timedelta(days=2), usegmt=True)
    backend = make_backend("sendgrid", lambda r: httpx.Response(503, headers={"Retry-After": far}), clock)
    with pytest.raises(TransientDeliveryError) as info:
        await backend.send(make_email())
    assert info.value.retry_after == 3600


@pytest.mark.parametrize("kind", PROVIDERS)
@pytest.mark.parametrize(
    "exc_type", [httpx.ConnectError, httpx.ReadTimeout, httpx.ConnectTimeout, httpx.RemoteProtocolError]
)
async def test_transport_errors_are_transient_and_wrapped(kind: str, exc_type: type[Exception]) -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise exc_type("connection went away", request=request)

    backend = make_backend(kind, boom)
    with pytest.raises(TransientDeliveryError) as info:
        await backend.send(make_email())
    await backend.aclose()
    assert isinstance(info.value.__cause__, exc_type)
    assert KEY not in str(info.value)


PERMANENT_BODIES: dict[str, tuple[int, dict[str, Any], str]] = {
    "resend": (
        422,
        {"statusCode": 422, "name": "validation_error", "message": "Invalid `to` field."},
        "validation_error: Invalid `to` field.",
    ),
    "postmark": (
        422,
        {"ErrorCode": 406, "Message": "You tried to send to recipient(s) that have been marked as inactive."},
        "ErrorCode 406: You tried to send to recipient(s) that have been marked as inactive.",
    ),
    "sendgrid": (
        400,
        {"errors": [{"message": "does not match a verified Sender Identity", "field": "from"}]},
        "from: does not match a verified Sender Identity",
    ),
    "mailgun": (400, {"message": "'to' parameter is not valid"}, "'to' parameter is not valid"),
    "webhook": (400, {"error": "unknown kind"}, "unknown kind"),
}


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_4xx_is_permanent_with_the_providers_reason(kind: str) -> None:
    status, body, reason = PERMANENT_BODIES[kind]
    backend = make_backend(kind, lambda r: httpx.Response(status, json=body))
    with pytest.raises(PermanentDeliveryError) as info:
        await backend.send(make_email())
    await backend.aclose()
    assert reason in str(info.value)
    assert str(status) in str(info.value)
    assert kind in str(info.value)
    assert info.value.retry_after is None


@pytest.mark.parametrize("kind", PROVIDERS)
@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
async def test_4xx_never_shows_our_key(kind: str, status: int) -> None:
    basic = base64.b64encode(f"api:{KEY}".encode()).decode()
    echo = {
        "message": f"API key {KEY} is invalid (Basic {basic}) bearer {BEARER} secret {SECRET}",
        "Message": f"Bad or missing server token {KEY}",
        "ErrorCode": 10,
        "errors": [{"message": f"The provided authorization grant {KEY} is invalid"}],
        "error": f"token {BEARER}",
    }
    held = {"mailgun": (KEY, basic), "webhook": (SECRET, BEARER)}.get(kind, (KEY,))
    backend = make_backend(kind, lambda r: httpx.Response(status, json=echo))
    with pytest.raises(PermanentDeliveryError) as info:
        await backend.send(make_email())
    await backend.aclose()
    text = str(info.value)
    for secret in held:
        assert secret not in text
    assert "[redacted]" in text


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_an_echoed_message_never_leaks_the_reset_link(kind: str) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"message": "rejected: " + request.content.decode(errors="replace")})

    backend = make_backend(kind, echo)
    with pytest.raises(PermanentDeliveryError) as info:
        await backend.send(make_email())
    await backend.aclose()
    assert JWT not in str(info.value)
    assert "token=" not in str(info.value)


async def test_reason_is_cut_to_300_characters() -> None:
    backend = make_backend("mailgun", lambda r: httpx.Response(400, json={"message": "x" * 5000}))
    with pytest.raises(PermanentDeliveryError) as info:
        await backend.send(make_email())
    reason_part = str(info.value).split(": ", 2)[-1]
    assert len(reason_part) <= 300
    assert len(str(info.value)) < 360


async def test_non_json_error_body_is_still_classified() -> None:
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    backend = make_backend("postmark", lambda r: httpx.Response(502, text=html))
    with pytest.raises(TransientDeliveryError) as info:
        await backend.send(make_email())
    assert "502 Bad Gateway" in str(info.value)

    backend = make_backend("mailgun", lambda r: httpx.Response(401, text="Forbidden"))
    with pytest.raises(PermanentDeliveryError) as info:
        await backend.send(make_email())
    assert "Forbidden" in str(info.value)


@pytest.mark.parametrize("status", [404, 413, 451, 301])
async def test_other_non_2xx_are_permanent(status: int) -> None:
    backend = make_backend("webhook", lambda r: httpx.Response(status, headers={"Location": "/x"}))
    with pytest.raises(PermanentDeliveryError):
        await backend.send(make_email())


async def test_408_request_timeout_is_transient() -> None:
    backend = make_backend("webhook", lambda r: httpx.Response(408))
    with pytest.raises(TransientDeliveryError):
        await backend.send(make_email())


async def test_accepted_with_unreadable_body_is_still_accepted() -> None:
    # A 2xx means the provider took the message: a retry could send it twice.
    backend = make_backend("resend", lambda r: httpx.Response(200, text="not json{"))
    receipt = await backend.send(make_email())
    assert receipt.provider_message_id is None


async def test_postmark_error_code_in_a_200_is_permanent() -> None:
    body = {"ErrorCode": 300, "Message": "Invalid email request"}
    backend = make_backend("postmark", lambda r: httpx.Response(200, json=body))
    with pytest.raises(PermanentDeliveryError) as info:
        await backend.send(make_email())
    assert "ErrorCode 300: Invalid email request" in str(info.value)


async def test_resend_409_concurrent_idempotent_request_is_transient() -> None:
    body = {"statusCode": 409, "name": "concurrent_idempotent_requests", "message": "in progress"}
    backend = make_backend("resend", lambda r: httpx.Response(409, json=body))
    with pytest.raises(TransientDeliveryError) as info:
        await backend.send(make_email())
    assert "concurrent_idempotent_requests" in str(info.value)

    body = {"statusCode": 409, "name": "invalid_idempotent_request", "message": "different payload"}
    backend = make_backend("resend", lambda r: httpx.Response(409, json=body))
    with pytest.raises(PermanentDeliveryError):
        await backend.send(make_email())


# --- client lifecycle and hygiene --------------------------------------------------


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_name_and_repr_hide_secrets(kind: str) -> None:
    backend = make_backend(kind, SUCCESS[kind])
    assert backend.name == kind
    for secret in (KEY, SECRET, BEARER):
        assert secret not in repr(backend)
        assert secret not in str(backend)


async def test_one_pooled_client_shared_by_concurrent_sends_and_aclose_is_idempotent() -> None:
    rec = Recorder(SUCCESS["sendgrid"])
    backend = make_backend("sendgrid", rec)
    client = backend._client()
    assert client.timeout == httpx.Timeout(10, connect=5)
    receipts = await asyncio.gather(*(backend.send(make_email()) for _ in range(20)))
    assert backend._client() is client
    assert len(rec.requests) == 20
    assert {r.provider_message_id for r in receipts} == {"sg-msg-1"}
    await backend.aclose()
    await backend.aclose()
    assert client.is_closed
    # A send after aclose opens a fresh client rather than failing.
    assert (await backend.send(make_email())).provider_message_id == "sg-msg-1"
    await backend.aclose()


# --- build_http_backend(settings) --------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "extra", "cls", "url"),
    [
        ("resend", {}, ResendBackend, "https://api.resend.com/emails"),
        ("postmark", {}, PostmarkBackend, "https://api.postmarkapp.com/email"),
        ("sendgrid", {}, SendGridBackend, "https://api.sendgrid.com/v3/mail/send"),
        (
            "mailgun",
            {"mailgun_domain": "mg.example.com"},
            MailgunBackend,
            "https://api.mailgun.net/v3/mg.example.com/messages",
        ),
        (
            "webhook",
            {"webhook_url": "https://hooks.example.net/x", "webhook_secret": SecretStr(SECRET)},
            WebhookBackend,
            "https://hooks.example.net/x",
        ),
    ],
)
async def test_build_from_settings(kind: str, extra: dict[str, Any], cls: type, url: str) -> None:
    rec = Recorder(SUCCESS[kind])
    backend = build_http_backend(
        settings(email_backend=kind, **extra), transport=httpx.MockTransport(rec), clock=FakeClock()
    )
    assert type(backend) is cls
    assert backend.name == kind
    receipt = await backend.send(make_email())
    await backend.aclose()
    assert str(rec.last.url) == url
    assert receipt.provider_message_id == EXPECTED_ID[kind]


async def test_open_email_backend_reaches_the_http_factory() -> None:
    backend = open_email_backend(settings(email_backend="postmark"))  # type: ignore[arg-type]
    assert isinstance(backend, PostmarkBackend)
    await backend.aclose()


async def test_settings_overrides_base_url_and_stream() -> None:
    rec = Recorder(SUCCESS["mailgun"])
    backend = build_http_backend(
        settings(
            email_backend="mailgun",
            mailgun_domain="mg.example.eu",
            email_api_url="https://api.eu.mailgun.net/",
        ),
        transport=httpx.MockTransport(rec),
    )
    await backend.send(make_email())
    await backend.aclose()
    assert str(rec.last.url) == "https://api.eu.mailgun.net/v3/mg.example.eu/messages"

    rec = Recorder(SUCCESS["postmark"])
    backend = build_http_backend(
        settings(email_backend="postmark", postmark_message_stream="broadcast-x"),
        transport=httpx.MockTransport(rec),
    )
    await backend.send(make_email())
    await backend.aclose()
    assert json.loads(rec.last.content)["MessageStream"] == "broadcast-x"


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"email_backend": "resend", "email_api_key": None}, "RESET_MCP_EMAIL_API_KEY"),
        ({"email_backend": "postmark", "email_api_key": SecretStr("  ")}, "RESET_MCP_EMAIL_API_KEY"),
        ({"email_backend": "sendgrid", "email_api_key": None}, "RESET_MCP_EMAIL_API_KEY"),
        ({"email_backend": "mailgun", "mailgun_domain": None}, "RESET_MCP_MAILGUN_DOMAIN"),
        ({"email_backend": "mailgun", "email_api_key": None}, "RESET_MCP_EMAIL_API_KEY"),
        ({"email_backend": "webhook", "webhook_secret": SecretStr(SECRET)}, "RESET_MCP_WEBHOOK_URL"),
        ({"email_backend": "webhook", "webhook_url": "https://h.example/x"}, "RESET_MCP_WEBHOOK_SECRET"),
        ({"email_backend": "carrier-pigeon"}, "RESET_MCP_EMAIL_BACKEND"),
        (
            {"email_backend": "webhook", "webhook_url": "http://h.ex/", "webhook_secret": SecretStr("s")},
            "RESET_MCP_WEBHOOK_URL",
        ),
        ({"email_backend": "resend", "email_api_url": "http://proxy.example"}, "RESET_MCP_EMAIL_API_URL"),
        ({"email_backend": "resend", "email_api_url": "api.resend.com"}, "RESET_MCP_EMAIL_API_URL"),
    ],
)
def test_missing_or_bad_settings_raise_config_error(overrides: dict[str, Any], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_http_backend(settings(**overrides))  # type: ignore[arg-type]
    assert variable in str(info.value)
    assert KEY not in str(info.value)


def test_plain_http_is_allowed_to_localhost_only() -> None:
    backend = build_http_backend(
        settings(email_backend="webhook", webhook_url="http://127.0.0.1:8080/", webhook_secret=SecretStr("s"))
    )
    assert backend.name == "webhook"
    backend = build_http_backend(settings(email_backend="resend", email_api_url="http://localhost:4010"))
    assert backend.url == "http://localhost:4010/emails"  # type: ignore[attr-defined]
