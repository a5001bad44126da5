"""What may not leave in an error text or a log line: tokens, our credentials, a message's links.

A provider's refusal (an SMTP reply, an HTTP API's error body) is shown to the agent that
asked, kept in the outbox row and written to the audit log. Some servers quote what they
refused, link and all, so every such text passes through `redact_reason` before it becomes
a `DeliveryError`: our credentials, the links of the message itself, anything shaped like
a JWT (also cut short, as a server's quote may be) and the value of a `token=` or `sig=`
URL parameter are replaced, then the text is made one line and cut to `MAX_REASON`
characters (cut after redacting, so a cut never leaves half a token unrecognised).

`redact_text` is the part that needs no message: `logs.py` applies it to every log record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from reset_mcp.mail.base import OutgoingEmail

MAX_REASON = 300
REDACTED = "[redacted]"
# A JWT's header and payload are base64url JSON objects, so each starts "eyJ" ('{"'); a
# quote cut inside the payload or the signature still starts so. Any such run goes, with
# the segments after it.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}(?:\.[A-Za-z0-9_-]*){0,2}")
# The link parameters that carry a bearer secret: reset and report links (`token`), the
# overseer's approval links (`sig`).
_SECRET_PARAM = re.compile(r"(?i)(\b(?:token|sig)=)[^\s&#\"'<>]+")
_URL = re.compile(r"https?://[^\s\"'<>]+")


def redact_text(text: str) -> str:
    """`text` with JWT-shaped runs and `token=` / `sig=` parameter values replaced."""
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    if "=" in text:
        text = _SECRET_PARAM.sub(r"\1" + REDACTED, text)
    return text


def message_links(email: OutgoingEmail) -> set[str]:
    """Every link in the message's text and HTML parts."""
    return set(_URL.findall(email.text)) | set(_URL.findall(email.html))


def redact_reason(text: str, *, email: OutgoingEmail | None = None, secrets: Iterable[str] = ()) -> str:
    """A provider's error text made safe to show: see the module docstring."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    if email is not None:
        # Longest first: a link that is the prefix of another must not leave the other's tail.
        for link in sorted(message_links(email), key=len, reverse=True):
            text = text.replace(link, "[link]")
    text = " ".join(redact_text(text).split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."
