"""What every HTTP email API backend shares: the pooled client and error classification.

A provider subclass only says how to build its request and where its message id is;
this base turns every outcome into the `EmailBackend` contract:

    connection error, timeout (httpx.TransportError)   -> TransientDeliveryError
    HTTP 408, 425, 429, 5xx                             -> TransientDeliveryError,
                                                           retry_after from Retry-After
    HTTP 400, 401, 403, 404, 409, 413, 422, other 4xx   -> PermanentDeliveryError
    a 2xx                                               -> DeliveryReceipt, even when
                                                           the body is unreadable

A 2xx is never turned into an error: the provider accepted the message, and a retry
could send it twice on providers without an idempotency key. Error messages carry the
provider's reason (cut to 300 characters) with our credentials, anything shaped like a
JWT and the links of the message itself redacted (`mail/redact.py`, shared with SMTP), so
they are safe to show an agent.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from reset_mcp.clock import Clock, SystemClock
from reset_mcp.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError
from reset_mcp.mail.base import DeliveryReceipt, OutgoingEmail
from reset_mcp.mail.redact import redact_reason

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10, connect=5)
LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=30)
MAX_RETRY_AFTER = 3600.0
TRANSIENT_STATUSES = frozenset({408, 425, 429})
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
API_URL_VAR = "RESET_MCP_EMAIL_API_URL"
_ADDRESS_SPECIALS = set('()<>[]:;@\\,."')


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One provider request; `json` or `data` (form fields) is the body, or `content`."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    data: Mapping[str, str] | None = None
    content: bytes | None = None
    auth: tuple[str, str] | None = None


def check_url(url: str, variable: str) -> str:
    """Refuse a URL that is not https (plain http only to a loopback host)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and host in _LOOPBACK_HOSTS:
        return url
    raise ConfigError(
        f"{variable} must be an https:// URL (plain http is allowed only to localhost); "
        f"got {parts.scheme or 'no scheme'}://{host or '?'}"
    )


def format_address(address: str, name: str) -> str:
    """`Name <addr>`, quoting the display name when it holds RFC 5322 specials."""
    name = name.strip()
    if not name:
        return address
    if _ADDRESS_SPECIALS & set(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"


def message_headers(email: OutgoingEmail) -> dict[str, str]:
    """Our stable Message-ID first, then the composer's headers (never a second Message-ID)."""
    headers = {"Message-ID": email.message_id}
    for name, value in email.headers.items():
        if name.lower() != "message-id":
            headers[name] = value
    return headers


def parse_retry_after(value: str | None, clock: Clock) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP-date is always GMT
            return None
        seconds = (when - clock.now()).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def require_setting(value: str | None, variable: str) -> str:
    """The stripped value, or a `ConfigError` naming the RESET_MCP_ variable."""
    if not value or not value.strip():
        raise ConfigError(f"{variable} is required for this email backend")
    return value.strip()


def first_text(body: Any, keys: Iterable[str]) -> str | None:
    """The first non-empty string under one of `keys` in a JSON object."""
    if isinstance(body, dict):
        for key in keys:
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value
    return None


class HttpEmailBackend:
    """Base of the HTTP API backends: one pooled `httpx.AsyncClient` per instance.

    Subclasses set `name`, implement `build_request` and may override `reason`
    (the provider's error text) and `message_id` (read from an accepted response).
    """

    name = "http"
    url: str  # where `build_request` sends: set by each subclass
    max_concurrency = LIMITS.max_connections  # the dispatcher never starts more sends than this

    def __init__(
        self,
        *,
        secrets: Iterable[str],
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._secrets = tuple(s for s in secrets if s)
        self._transport = transport
        self._clock = clock or SystemClock()
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"

    def _client(self) -> httpx.AsyncClient:
        # Created on first use (and again after aclose): no await between the check and
        # the assignment, so concurrent senders on one event loop share one client.
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=TIMEOUT,
                limits=LIMITS,
                transport=self._transport,
                follow_redirects=False,
                headers={"User-Agent": "reset-mcp", "Accept": "application/json"},
            )
        return self._http

    async def aclose(self) -> None:
        client, self._http = self._http, None
        if client is not None:
            await client.aclose()

    def build_request(self, email: OutgoingEmail) -> HttpRequest:
        raise NotImplementedError

    async def probe(self) -> str:
        """Reach the API's host (DNS, TCP, TLS with certificate checks) with a HEAD request
        that carries no credentials and sends nothing: any HTTP answer means reachable. The
        API key itself is checked only by a send (providers differ in what a cheap
        authenticated call would need, and a sending-only key may be refused it)."""
        parts = urlsplit(self.url)
        origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # never user:password@
        try:
            response = await self._client().head(origin + "/")
        except httpx.HTTPError as exc:
            what = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
            raise TransientDeliveryError(f"{self.name}: cannot reach {origin} ({what}: {type(exc).__name__})") from exc
        return f"reached {origin} (HTTP {response.status_code}); the API key is checked by the first send"

    def reason(self, body: Any, response: httpx.Response) -> str:
        """The provider's explanation of a refusal; subclasses know their schema."""
        return first_text(body, ("message", "error", "detail", "Message")) or response.text

    def message_id(self, body: Any, response: httpx.Response) -> str | None:
        value = body.get("id") if isinstance(body, dict) else None
        return str(value) if value not in (None, "") else None

    def check_accepted(self, body: Any, response: httpx.Response, email: OutgoingEmail) -> None:
        """Hook for providers that can refuse inside a 2xx (Postmark's ErrorCode)."""

    async def send(self, email: OutgoingEmail) -> DeliveryReceipt:
        request = self.build_request(email)
        try:
            response = await self._client().post(
                request.url,
                headers=dict(request.headers),
                json=request.json,
                data=request.data,
                content=request.content,
                auth=request.auth,
            )
        except httpx.HTTPError as exc:
            # TransportError (refused, reset, DNS, TLS) and TimeoutException are the
            # expected ones; any other httpx error is wrapped the same way.
            what = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
            text = self._safe(f"{self.name}: request {what} ({type(exc).__name__}: {exc})", email)
            raise TransientDeliveryError(text) from exc
        body = _json_or_none(response)
        status = response.status_code
        if 200 <= status < 300:
            self.check_accepted(body, response, email)
            provider_id = self.message_id(body, response)
            if provider_id is None:
                log.warning("%s accepted %s without a readable message id", self.name, email.message_id)
            return DeliveryReceipt(provider_message_id=provider_id)
        raise self.classify(status, body, response, email)

    def classify(
        self, status: int, body: Any, response: httpx.Response, email: OutgoingEmail
    ) -> TransientDeliveryError | PermanentDeliveryError:
        """Map a non-2xx answer to the error the dispatcher acts on."""
        text = self.refusal(status, body, response, email)
        if status in TRANSIENT_STATUSES or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock)
            return TransientDeliveryError(text, retry_after=retry_after)
        return PermanentDeliveryError(text)

    def refusal(self, status: int, body: Any, response: httpx.Response, email: OutgoingEmail) -> str:
        try:
            reason = self.reason(body, response)
        except Exception:  # a malformed error body must not hide the status
            reason = ""
        prefix = f"{self.name}: HTTP {status} {response.reason_phrase or 'error'}"
        reason = self._safe(reason, email)
        return f"{prefix}: {reason}" if reason else prefix

    def _safe(self, text: str, email: OutgoingEmail) -> str:
        """Redact credentials, JWTs and the message's own links; one line, 300 chars."""
        return redact_reason(text, email=email, secrets=self._secrets)


class ApiKeyBackend(HttpEmailBackend):
    """A provider reached at `default_base_url + path` (or `base_url + path`) with a key."""

    default_base_url = ""
    path = ""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._api_key = require_setting(api_key, "RESET_MCP_EMAIL_API_KEY")
        super().__init__(secrets=self._secret_forms(), transport=transport, clock=clock)
        base = check_url(base_url, API_URL_VAR) if base_url else self.default_base_url
        self.url = base.rstrip("/") + self.path

    def _secret_forms(self) -> list[str]:
        return [self._api_key]


def basic_auth_value(user: str, password: str) -> str:
    """The base64 form of HTTP basic credentials, so it can be redacted too."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _json_or_none(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
