"""What every kind's rendering shares: the branding, who asked, and the rendered result.

Plain data, no Jinja2, no MIME. Each kind's own data class lives in its module under
`emails/`.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    forgot_password_url: str | None = None  # the app's page to ask for a reset link


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
