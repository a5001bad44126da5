"""What an email kind is: the facts one module under `emails/` gives about one kind of email.

A kind has a name and a label, says whether it carries a reset token and whether it is
the overseer's own mail (which the oversight policy does not gate, and which is no part
of an account's contact history), and has two data shapes:

- its payload: what a send record and its outbox row keep, as JSON. Never a token or a
  link: a token-carrying kind keeps the token's claims (`claims`, `ttl_minutes`, added
  when the send is released), and the token is minted again at delivery.
- its render data: what the composer gets, link included, only in memory, only for the
  moment of rendering.

`render(env, payload, token, now)` is the one way from the first to an email; the
dispatcher passes the minted token, the admin preview passes `MASK`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, ClassVar, Generic, TypeVar

from reset_mcp.compose import Composer, RenderedEmail, RequestContext
from reset_mcp.compose.i18n import Formatter, TextTranslator
from reset_mcp.links import ApprovalLinks

MASK = "•••MASKED•••"  # stands in for a token in a preview: nothing is minted, no record written

P = TypeVar("P")
D = TypeVar("D")


def from_ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def dump_context(ctx: RequestContext) -> dict[str, Any]:
    return {"at": ctx.at.timestamp(), "ip": ctx.ip, "device": ctx.device, "location": ctx.location}


def load_context(raw: Mapping[str, Any] | None) -> RequestContext | None:
    if not raw:
        return None
    return RequestContext(
        at=from_ts(float(raw["at"])), ip=str(raw["ip"]), device=str(raw["device"]), location=str(raw["location"])
    )


@dataclass(slots=True)  # not frozen: built and dropped on every render, and freezing costs
class Claims:
    """A token's claims as a payload keeps them; its jti is re-derived from the send id."""

    user_id: str
    email: str
    iat: int
    exp: int
    kid: str

    def dump(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "email": self.email, "iat": self.iat, "exp": self.exp, "kid": self.kid}

    @classmethod
    def load(cls, raw: Mapping[str, Any]) -> Claims:
        return cls(str(raw["user_id"]), str(raw["email"]), int(raw["iat"]), int(raw["exp"]), str(raw["kid"]))


@dataclass(frozen=True, slots=True)
class RenderEnv:
    """What rendering needs besides a payload, fixed when the App is built."""

    composer: Composer
    reset_url: str  # templates with {token}; never built from a request's Host
    report_url: str | None
    ttl_minutes: int
    approval_links: ApprovalLinks | None = None  # signed approve/reject links, where a server answers them


class EmailKind(ABC, Generic[P, D]):
    """One kind of email; subclasses set the class attributes and the four methods."""

    name: ClassVar[str]
    label: ClassVar[str]  # English, for the approvals page and approval summaries
    carries_token: ClassVar[bool] = False
    to_overseer: ClassVar[bool] = False  # the overseer's own mail: not gated, not in an account's history
    subject_keys: ClassVar[tuple[str, ...]]  # the message keys `subject_key` may answer
    messages: ClassVar[Mapping[str, str]] = MappingProxyType({})  # English defaults of the kind's own messages

    def subject_key(self, data: D) -> str:
        return self.subject_keys[0]

    @abstractmethod
    def view(self, data: D, fmt: Formatter, tt: TextTranslator) -> dict[str, Any]:
        """The template variables for `data` (what every kind shares: `compose.views`)."""

    @abstractmethod
    def samples(self) -> tuple[D, D]:
        """Sample render data (full, minimal): previews, golden files, the start-up self-test."""

    def sample(self, env: RenderEnv) -> D:
        """The full sample as this configuration sends it (previews): links built from `env`,
        a token shown as MASK, and no link the configuration lacks. A kind with no link of
        its own keeps its full sample."""
        return self.samples()[0]

    @abstractmethod
    def load(self, payload: Mapping[str, Any]) -> P:
        """The typed payload from its stored JSON (rows written by older versions included)."""

    @abstractmethod
    def data(self, env: RenderEnv, payload: P, token: str | None, now: datetime) -> D:
        """The render data: the payload plus what only exists at render time (links)."""

    def render(self, env: RenderEnv, payload: Mapping[str, Any], token: str | None, now: datetime) -> RenderedEmail:
        data = self.data(env, self.load(payload), token, now)
        return env.composer.render(self.name, data, locale=payload.get("locale"), timezone=payload.get("timezone"))
