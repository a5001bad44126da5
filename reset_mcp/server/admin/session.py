"""The approvals page's session cookie, its CSRF tokens, and the small HTTP helpers it needs.

A session is a signed cookie and a row in the store:

    v1.<key id>.<expiry, unix seconds>.<nonce>.<HMAC-SHA256 of the rest, base64url>

signed under `_derive(secret, "admin-session")`, so it is worthless without the server
secret and rotates with it. The store keeps a hash of the cookie (`Session.id`) until
sign-out or expiry (`flows/admin.py`): every request checks that row, so signing out ends
the session on every instance and worker process, and a copied cookie opens nothing
afterwards. It names the API key that signed in; every request re-reads that key, so
revoking it (`reset-mcp keys revoke`) ends its sessions at once. The cookie is HttpOnly,
SameSite=Strict, Path=/admin, and Secure unless the server is on loopback over plain http.

CSRF: every form carries `csrf`, an HMAC of a binding value: the session cookie when
signed in, else a random per-browser nonce in a second cookie (the sign-in form and the
email confirmation page). It is checked in constant time on every POST, and a POST whose
Origin is not this server's own is refused before that.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from reset_mcp.server.http.auth import HTTPProblem
from reset_mcp.tokens import _derive

SESSION_COOKIE = "rmcp_admin"
FORM_COOKIE = "rmcp_form"
COOKIE_PATH = "/admin"
SESSION_TTL = timedelta(hours=8)
FORM_COOKIE_SECONDS = 12 * 3600
MAX_FORM_BODY = 16 * 1024
_MAX_COOKIE = 256
_SESSION_RE = re.compile(r"v1\.([a-z0-9]{8})\.([0-9]{1,12})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{43})")
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{22,64}")

# Referrer-Policy is `same-origin`, not `no-referrer`: under `no-referrer` Chromium sends
# `Origin: null` on every form POST (Fetch, "serialize a request origin"), which the Origin
# checks (the SDK's and ours) must refuse. `same-origin` still sends no referrer to any other
# site, so an admin URL or a signed link never leaves this server (Django's default, same reason).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self'; style-src 'self'; frame-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
# A held email's HTML, opened from the pending page: its inline styles, images; no script, no forms.
PREVIEW_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": (
        "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; sandbox; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",  # no forms here; images load without telling where from
}


class RedactSignatures(logging.Filter):
    """Keeps approval-link signatures out of access logs (uvicorn logs each request's query)."""

    _SIG_RE = re.compile(r"(\bsig=)[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "sig=" in a for a in record.args):
            record.args = tuple(self._SIG_RE.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_log(logger: logging.Logger) -> None:
    if not any(isinstance(f, RedactSignatures) for f in logger.filters):
        logger.addFilter(RedactSignatures())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str
    expires: int  # unix seconds
    value: str  # the cookie as presented: the CSRF binding

    @property
    def id(self) -> str:
        """What the store keeps of the session: a hash of its cookie, never the cookie."""
        return hashlib.sha256(self.value.encode()).hexdigest()

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expires, UTC)


class SessionCodec:
    def __init__(self, secret: str, ttl: timedelta = SESSION_TTL) -> None:
        self._key = _derive(secret.encode(), "admin-session")
        self.ttl = ttl

    def _mac(self, label: str, message: str) -> str:
        return _b64(hmac.new(self._key, f"{label}\n{message}".encode(), hashlib.sha256).digest())

    def issue(self, key_id: str, now: datetime) -> Session:
        expires = int((now + self.ttl).timestamp())
        body = f"v1.{key_id}.{expires}.{secrets.token_urlsafe(12)}"
        return Session(key_id, expires, f"{body}.{self._mac('session', body)}")

    def read(self, value: str | None, now: datetime) -> Session | None:
        """The session the cookie names, or None: malformed, forged, or expired."""
        if not value or len(value) > _MAX_COOKIE:
            return None
        match = _SESSION_RE.fullmatch(value)
        if match is None:
            return None
        body = value.rpartition(".")[0]
        if not hmac.compare_digest(self._mac("session", body), match.group(4)):
            return None
        expires = int(match.group(2))
        if expires <= now.timestamp():
            return None
        return Session(match.group(1), expires, value)

    def csrf_for(self, binding: str) -> str:
        return self._mac("csrf", binding)

    def csrf_ok(self, binding: str | None, presented: str | None) -> bool:
        expected = self.csrf_for(binding or "")
        return bool(binding) and hmac.compare_digest(expected.encode(), (presented or "").encode())


def form_nonce(request: Request) -> str | None:
    """The pre-session CSRF nonce this browser holds, if it is well formed."""
    value = request.cookies.get(FORM_COOKIE)
    return value if value and _NONCE_RE.fullmatch(value) else None


def new_form_nonce() -> str:
    return secrets.token_urlsafe(24)


def set_cookie(response: Response, name: str, value: str, *, max_age: int, secure: bool) -> None:
    response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, secure=secure, httponly=True, samesite="strict")


def clear_cookie(response: Response, name: str, *, secure: bool) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, secure=secure, httponly=True, samesite="strict")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_origin(request: Request, own_origin: str) -> None:
    """Refuse a POST from another origin (403). A request without Origin relies on the CSRF token."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "").lower()
    allowed = {own_origin, f"http://{host}", f"https://{host}"}
    if origin.lower() not in allowed:
        raise HTTPProblem(403, "this form was posted from another site; open the page here and try again")


async def read_form(request: Request) -> dict[str, str]:
    """A url-encoded form body, at most 16 KiB; the first value of each field."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise HTTPProblem(415, "send the form as application/x-www-form-urlencoded")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BODY:
            raise HTTPProblem(413, "the form is too large")
        chunks.append(chunk)
    try:
        parsed = parse_qs(b"".join(chunks).decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise HTTPProblem(400, "the form could not be read") from None
    return {name: values[0] for name, values in parsed.items() if values}
