"""Signed approve / reject links for the overseer's notice email (approval by email).

    <public url>/admin/decide/<approval id>/<approve|reject>?exp=<unix seconds>&sig=<HMAC>

The HMAC-SHA256, under `_derive(secret, "approval-link")`, covers the approval id, the
action, the expiry (the approval's own) and the overseer's address, so a link cannot be
turned into another action, another approval, a later deadline or another decider, and
an address change in the settings voids the links already sent. Following a link never
decides (mail scanners follow links): it opens a confirmation page whose POST decides as
`email:<overseer>`. A link is single use because a decided approval cannot be decided
again, whatever the channel; its page then says so.

`MessageFactory.approval_links` is set to an `ApprovalLinks` by the HTTP server, so the
notice carries links only where a server can answer them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime
from typing import Literal
from urllib.parse import quote

from reset_mcp.tokens import _derive

ACTIONS = ("approve", "reject")
LinkState = Literal["ok", "invalid", "expired"]
_EXP_RE = re.compile(r"[0-9]{1,12}")
_SIG_RE = re.compile(r"[A-Za-z0-9_-]{43}")


class ApprovalLinks:
    """Builds and checks the links; callable as `MessageFactory.approval_links`."""

    def __init__(self, secret: str, base_url: str, overseer: str) -> None:
        self._key = _derive(secret.encode(), "approval-link")
        self._base = base_url.rstrip("/")
        self.overseer = overseer

    def signature(self, approval_id: str, action: str, exp: int) -> str:
        message = f"{approval_id}\n{action}\n{exp}\n{self.overseer}".encode()
        return base64.urlsafe_b64encode(hmac.new(self._key, message, hashlib.sha256).digest()).rstrip(b"=").decode()

    def url(self, approval_id: str, action: str, expires_at: datetime) -> str:
        exp = int(expires_at.timestamp())
        sig = self.signature(approval_id, action, exp)
        return f"{self._base}/admin/decide/{quote(approval_id, safe='')}/{action}?exp={exp}&sig={sig}"

    def __call__(self, approval_id: str, expires_at: datetime) -> dict[str, str]:
        return {f"{action}_url": self.url(approval_id, action, expires_at) for action in ACTIONS}

    def check(self, approval_id: str, action: str, exp: str | None, sig: str | None, now: datetime) -> LinkState:
        """`ok`, `invalid` (forged, altered, another action) or `expired` (signed, but past its time)."""
        if action not in ACTIONS or not exp or not sig or not _EXP_RE.fullmatch(exp) or not _SIG_RE.fullmatch(sig):
            return "invalid"
        if not hmac.compare_digest(self.signature(approval_id, action, int(exp)).encode(), sig.encode()):
            return "invalid"
        return "expired" if int(exp) <= now.timestamp() else "ok"
