"""What the composer takes and gives: plain data, no Jinja2, no MIME.

The service builds these from its own records; the composer turns them into a
`RenderedEmail`. Keeping them apart lets the service be tested without templates and
the templates be previewed without a service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Branding:
    """Who the email comes from, as configured (RESET_MCP_PRODUCT_NAME and friends)."""

    product_name: str
    sender_name: str | None = None
    logo_url: str | None = None
    primary_color: str = "#2563eb"
    support_url: str | None = None
    support_email: str | None = None
    postal_address: str | None = None


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who asked, as shown to the account owner.

    `device` is already a label ("Chrome 131 on Windows 10"), `location` a label
    ("Berlin, Germany", "private network", "unknown"). All of it is untrusted text
    that the caller supplied or derived from caller input: templates escape it.
    """

    at: datetime  # aware UTC
    ip: str
    device: str
    location: str


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """A subject (one line, no CR/LF, under 78 characters) and both parts."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class PasswordResetData:
    reset_url: str
    expires_at: datetime
    ttl_minutes: int
    context: RequestContext
    to_name: str | None = None
    report_url: str | None = None  # "this wasn't me" link, when configured


@dataclass(frozen=True, slots=True)
class SecurityAlertData:
    reason: str
    attempts: Sequence[RequestContext] = field(default_factory=tuple)
    to_name: str | None = None
    details: str | None = None


@dataclass(frozen=True, slots=True)
class PasswordChangedData:
    changed_at: datetime
    context: RequestContext | None = None
    to_name: str | None = None


@dataclass(frozen=True, slots=True)
class OversightNoticeData:
    """Tells the overseer what was sent or held; never carries a token or a link to one."""

    kind: str  # the email kind this notice is about
    recipient: str
    decision: str  # "sent" (monitored) or "held" (gated)
    summary: str
    requested_by: str
    approval_id: str | None = None
    approve_url: str | None = None  # signed single-use links (approval by email)
    reject_url: str | None = None
    expires_at: datetime | None = None
