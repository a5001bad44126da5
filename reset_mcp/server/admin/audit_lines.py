"""The audit log as the approvals page shows it: one readable line an entry, people by name.

An entry's `actor` is a principal (`key:<id>`, `email:<overseer>`, `cli:<user>`, `stdio`,
or one of reset-mcp's own parts); the page names a key by the name the overseer gave it
and spells the others out. Each action the code records has its sentence; an action this
module does not know still reads as words with its details as "name: value" pairs, never
as a JSON blob. The chain itself is `reset-mcp audit verify`'s; this is only its reading.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from reset_mcp.store.records import AuditEntry, SendRecord

NOTE_LIMIT = 300  # a reason or an error, as the page shows it
_OWN_PARTS = {
    "system": "reset-mcp",
    "dispatcher": "reset-mcp",
    "oversight": "reset-mcp",
    "abuse-detector": "abuse detection",
    "stdio": "local agent (stdio)",
}
_OUTCOMES = {
    "send": "sent",
    "send_and_notify": "sent, with a notice to the overseer",
    "hold": "held for approval",
    "block": "blocked",
    "reject": "declined in the agent's client",
}
_DROPPED = {
    "expired": "its link expired before it could leave",
    "cancelled": "its link was used or revoked meanwhile",
}


class Names:
    """Principals as people read them: a key by its name, made unique with its id if needed."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self.keys = dict(keys)
        self._shared = {name for name, n in Counter(self.keys.values()).items() if n > 1}

    def __call__(self, principal: str | None) -> str:
        if not principal:
            return "-"
        name = self.keys.get(principal)
        if name is not None:
            return f"{name} ({principal})" if name in self._shared else name
        scheme, _, rest = principal.partition(":")
        if scheme == "email" and rest:
            return f"{rest} (email link)"
        if scheme == "cli" and rest:
            return f"{rest} (command line)"
        if scheme == "oauth" and rest:
            return f"{rest} (OAuth)"
        return _OWN_PARTS.get(principal, principal)

    def replace_in(self, text: str) -> str:
        """`text` with every known key principal in it replaced by the key's name."""
        for principal in sorted(self.keys, key=len, reverse=True):
            if principal in text:
                text = text.replace(principal, self(principal))
        return text


@dataclass(frozen=True, slots=True)
class AuditLine:
    seq: int
    at: str
    actor: str
    actor_id: str  # the principal itself, for a tooltip
    text: str  # what happened, following the actor's name
    note: str | None = None  # a reason or an error, shown apart
    ref: str | None = None  # the request or other id the entry is about


def _cap(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= NOTE_LIMIT else text[: NOTE_LIMIT - 1] + "…"


def _quoted(value: object) -> str | None:
    return f"“{_cap(value)}”" if value else None


def _article(words: str) -> str:
    return "an" if words[:1] in "aeiou" else "a"


def _sentence(e: AuditEntry, send: SendRecord | None, kind_label: Callable[[str], str]) -> tuple[str, str | None]:
    d: dict[str, Any] = e.detail
    kind = str(d.get("kind") or (send.kind if send else ""))
    recipient = str(d.get("recipient") or (send.recipient if send else "")) or "an unknown address"
    label = kind_label(kind) if kind else ""
    what = f"{label[:1].lower()}{label[1:]} email to {recipient}" if label else f"email to {recipient}"
    email, the_email = f"{_article(what)} {what}", f"the {what}"
    action = e.action
    if action == "decision":
        outcome = _OUTCOMES.get(str(d.get("outcome")), str(d.get("outcome", "")).replace("_", " "))
        return f"asked for {email}: {outcome}", _cap(d["reason"]) if d.get("reason") else None
    if action.startswith("delivery_"):
        status, attempts = action.removeprefix("delivery_"), int(d.get("attempts") or 1)
        if status == "sent":
            return f"delivered {the_email}" + (f" after {attempts} attempts" if attempts > 1 else ""), None
        if status == "failed":
            return f"could not deliver {the_email} ({attempts} attempts)", _cap(d["error"]) if d.get("error") else None
        return f"dropped {the_email}: {_DROPPED.get(status, status)}", None
    if action in ("approval_approved", "approval_rejected"):
        return f"{action.removeprefix('approval_')} the held {what}", _quoted(d.get("reason"))
    if action == "approval_expired":
        return f"let the held {what} expire: no decision in time", None
    if action == "rate_limited":
        return f"was refused a reset for {recipient}: rate limited", _cap(d["reason"]) if d.get("reason") else None
    if action.endswith("_refused"):
        tried = {"verify": "check", "consume": "use"}.get(action.removesuffix("_refused"), "use")
        link = f"a reset link for {recipient}" if send else "a reset link"
        return f"tried to {tried} {link}: refused", _cap(d["reason"]) if d.get("reason") else None
    if action == "token_consumed":
        others = int(d.get("other_tokens_revoked") or 0)
        tail = f"; {others} other link{'s' if others != 1 else ''} revoked" if others else ""
        return f"used the reset link for {recipient}: password changed{tail}", None
    if action == "tokens_revoked":
        count = int(d.get("count") or 0)
        return f"revoked {count} reset link{'s' if count != 1 else ''} of {e.subject}", _quoted(d.get("reason"))
    if action == "admin_signin":
        return "signed in to this page", None
    if action == "admin_signout":
        return "signed out of this page", None
    if action == "reset_reported":
        return f"reported, for the owner of {recipient}, a reset they did not request", None
    if action == "unknown_account":  # the account directory knows no such account: nothing was sent
        return "asked for an email to an account the directory does not know: nothing sent", _quoted(d.get("account"))
    if action == "directory_unavailable":
        return "asked for an email, but the account directory could not answer: nothing sent", None
    if action == "approvals_page_offered":
        answer = {"accept": "agreed to open it", "decline": "declined", "cancel": "dismissed it"}
        return f"was pointed at this page for {the_email}", answer.get(str(d.get("client_answer")))
    if action == "approval_withdrawn":
        return f"withdrew its held {what}: its client declined to open this page", None
    return _generic(e)


def _generic(e: AuditEntry) -> tuple[str, str | None]:
    """An action without a sentence of its own: its words, and its details as name: value pairs."""
    pairs = " · ".join(
        f"{key.replace('_', ' ')}: {_cap(value)}" for key, value in sorted(e.detail.items()) if value not in (None, "")
    )
    return f"{e.action.replace('_', ' ')} {e.subject}".strip(), pairs or None


def audit_lines(
    entries: list[AuditEntry],
    names: Names,
    subjects: Mapping[str, SendRecord],
    kind_label: Callable[[str], str],
) -> list[AuditLine]:
    """Newest first."""
    lines = []
    for e in sorted(entries, key=lambda entry: entry.seq, reverse=True):
        send = subjects.get(e.subject)
        try:
            text, note = _sentence(e, send, kind_label)
        except (TypeError, ValueError):  # a detail of an unexpected type: the entry still reads
            text, note = _generic(e)
        lines.append(
            AuditLine(
                seq=e.seq,
                at=e.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                actor=names(e.actor),
                actor_id=e.actor,
                text=text,
                note=note,
                ref=e.subject if send is not None else None,
            )
        )
    return lines
