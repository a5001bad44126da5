"""The HTTP email API backends: Resend, Postmark, SendGrid, Mailgun and a signed webhook.

Each class maps an `OutgoingEmail` to its provider's documented send request and reads
the provider's message id back; transport, pooling and error classification live in
`http_base`. Our stable `Message-ID` goes out as a header wherever the provider lets us
set headers, and `idempotency_key` wherever the provider honours one (Resend, webhook).
Postmark, SendGrid and Mailgun have no idempotency key: a retry after a timeout whose
request did reach them can deliver twice, which the stable Message-ID lets mail clients
and the recipient's server recognise as one message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import quote

import httpx

from reset_mcp.clock import Clock
from reset_mcp.errors import PermanentDeliveryError, TransientDeliveryError
from reset_mcp.mail.base import OutgoingEmail
from reset_mcp.mail.http_base import (
    ApiKeyBackend,
    HttpEmailBackend,
    HttpRequest,
    basic_auth_value,
    check_url,
    first_text,
    format_address,
    message_headers,
    require_setting,
)

SIGNATURE_HEADER = "X-Reset-MCP-Signature"


class ResendBackend(ApiKeyBackend):
    """POST https://api.resend.com/emails with `Authorization: Bearer` and `Idempotency-Key`."""

    name = "resend"
    default_base_url = "https://api.resend.com"
    path = "/emails"

    def build_request(self, email: OutgoingEmail) -> HttpRequest:
        body = {
            "from": format_address(email.from_address, email.from_name),
            "to": [email.to],
            "subject": email.subject,
            "html": email.html,
            "text": email.text,
            "headers": message_headers(email),
        }
        headers = {"Authorization": f"Bearer {self._api_key}", "Idempotency-Key": email.idempotency_key}
        return HttpRequest(self.url, headers=headers, json=body)

    def reason(self, body: Any, response: httpx.Response) -> str:
        message = first_text(body, ("message",)) or response.text
        name = first_text(body, ("name",))
        return f"{name}: {message}" if name else message

    def classify(
        self, status: int, body: Any, response: httpx.Response, email: OutgoingEmail
    ) -> TransientDeliveryError | PermanentDeliveryError:
        error = super().classify(status, body, response, email)
        # 409 concurrent_idempotent_requests: our earlier attempt with this key is still
        # in flight at Resend; a later retry gets its answer. (invalid_idempotent_request,
        # the same key with another body, stays permanent.)
        if status == 409 and first_text(body, ("name",)) == "concurrent_idempotent_requests":
            return TransientDeliveryError(error.reason, retry_after=1.0)
        return error


class PostmarkBackend(ApiKeyBackend):
    """POST https://api.postmarkapp.com/email with `X-Postmark-Server-Token`."""

    name = "postmark"
    default_base_url = "https://api.postmarkapp.com"
    path = "/email"

    def __init__(
        self,
        api_key: str,
        *,
        message_stream: str = "outbound",
        base_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(api_key, base_url=base_url, transport=transport, clock=clock)
        self.message_stream = message_stream or "outbound"

    def build_request(self, email: OutgoingEmail) -> HttpRequest:
        body = {
            "From": format_address(email.from_address, email.from_name),
            "To": email.to,
            "Subject": email.subject,
            "HtmlBody": email.html,
            "TextBody": email.text,
            "Headers": [{"Name": k, "Value": v} for k, v in message_headers(email).items()],
            "MessageStream": self.message_stream,
        }
        return HttpRequest(self.url, headers={"X-Postmark-Server-Token": self._api_key}, json=body)

    def reason(self, body: Any, response: httpx.Response) -> str:
        message = first_text(body, ("Message",)) or response.text
        code = body.get("ErrorCode") if isinstance(body, dict) else None
        return f"ErrorCode {code}: {message}" if code not in (None, 0) else message

    def message_id(self, body: Any, response: httpx.Response) -> str | None:
        value = body.get("MessageID") if isinstance(body, dict) else None
        return str(value) if value else None

    def check_accepted(self, body: Any, response: httpx.Response, email: OutgoingEmail) -> None:
        # Postmark reports refusals as ErrorCode != 0; should one ever come with a 2xx,
        # the message was not accepted.
        code = body.get("ErrorCode") if isinstance(body, dict) else None
        if code not in (None, 0):
            raise PermanentDeliveryError(self.refusal(response.status_code, body, response, email))


class SendGridBackend(ApiKeyBackend):
    """POST https://api.sendgrid.com/v3/mail/send; 202 with the id in `X-Message-Id`."""

    name = "sendgrid"
    default_base_url = "https://api.sendgrid.com"
    path = "/v3/mail/send"

    def build_request(self, email: OutgoingEmail) -> HttpRequest:
        sender = {"email": email.from_address}
        if email.from_name.strip():
            sender["name"] = email.from_name.strip()
        content = [  # SendGrid wants text/plain before text/html
            {"type": "text/plain", "value": email.text},
            {"type": "text/html", "value": email.html},
        ]
        body = {
            "personalizations": [{"to": [{"email": email.to}]}],
            "from": sender,
            "subject": email.subject,
            "content": [part for part in content if part["value"]],
            "headers": message_headers(email),
            "custom_args": {
                "kind": email.kind,
                "message_id": email.message_id,
                "idempotency_key": email.idempotency_key,
            },
        }
        return HttpRequest(self.url, headers={"Authorization": f"Bearer {self._api_key}"}, json=body)

    def reason(self, body: Any, response: httpx.Response) -> str:
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list):
            parts = []
            for error in errors:
                message = first_text(error, ("message",))
                field = first_text(error, ("field",))
                if message:
                    parts.append(f"{field}: {message}" if field else message)
            if parts:
                return "; ".join(parts)
        return super().reason(body, response)

    def message_id(self, body: Any, response: httpx.Response) -> str | None:
        return response.headers.get("X-Message-Id") or None


class MailgunBackend(ApiKeyBackend):
    """POST https://api.mailgun.net/v3/{domain}/messages, form fields, basic auth api:KEY.

    EU-region domains set `base_url` (RESET_MCP_EMAIL_API_URL) to https://api.eu.mailgun.net.
    """

    name = "mailgun"
    default_base_url = "https://api.mailgun.net"

    def __init__(
        self,
        api_key: str,
        domain: str,
        *,
        base_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.domain = require_setting(domain, "RESET_MCP_MAILGUN_DOMAIN")
        self.path = f"/v3/{quote(self.domain, safe='')}/messages"
        super().__init__(api_key, base_url=base_url, transport=transport, clock=clock)

    def _secret_forms(self) -> list[str]:
        return [self._api_key, basic_auth_value("api", self._api_key)]

    def build_request(self, email: OutgoingEmail) -> HttpRequest:
        data = {
            "from": format_address(email.from_address, email.from_name),
            "to": email.to,
            "subject": email.subject,
            "text": email.text,
            "html": email.html,
        }
        for name, value in message_headers(email).items():
            data["h:Message-Id" if name == "Message-ID" else f"h:{name}"] = value
        return HttpRequest(self.url, data=data, auth=("api", self._api_key))


def sign_webhook(body: bytes, secret: str, timestamp: int) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, the Stripe-style signature.

    The timestamp is inside the signed bytes so a captured request cannot be replayed
    later: the receiver checks the HMAC *and* that `t` is recent (a few minutes), and
    the `Idempotency-Key` header dedupes honest retries within that window.
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_webhook_signature(
    body: bytes, header: str, secret: str, *, tolerance: float = 300, now: float | None = None
) -> bool:
    """What a receiver does: the HMAC matches (constant time) and `t` is within tolerance."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = sign_webhook(body, secret, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class WebhookBackend(HttpEmailBackend):
    """POSTs the message as JSON to the user's own endpoint, signed with the shared secret.

    The body carries the rendered email, reset link included, so the URL must be https
    (plain http only to localhost) and every request is signed; the receiver must verify
    `X-Reset-MCP-Signature` (see `verify_webhook_signature`) and treat a repeated
    `Idempotency-Key` as already done, answering 2xx.
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        bearer: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.url = check_url(require_setting(url, "RESET_MCP_WEBHOOK_URL"), "RESET_MCP_WEBHOOK_URL")
        self._secret = require_setting(secret, "RESET_MCP_WEBHOOK_SECRET")
        self._bearer = bearer.strip() if bearer and bearer.strip() else None
        super().__init__(secrets=[self._secret, self._bearer or ""], transport=transport, clock=clock)

    def build_request(self, email: OutgoingEmail) -> HttpRequest:
        payload = {
            "message_id": email.message_id,
            "idempotency_key": email.idempotency_key,
            "kind": email.kind,
            "from": email.from_address,
            "from_name": email.from_name,
            "to": email.to,
            "subject": email.subject,
            "text": email.text,
            "html": email.html,
            "headers": message_headers(email),
            "date": email.date.isoformat(),
        }
        # Sign the exact bytes we send, so serialise here rather than via `json=`.
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = int(self._clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": email.idempotency_key,
            SIGNATURE_HEADER: sign_webhook(body, self._secret, timestamp),
        }
        if self._bearer:
            headers["Authorization"] = f"Bearer {self._bearer}"
        return HttpRequest(self.url, headers=headers, content=body)
