"""The oversight policy: for each outgoing email, one decision.

The trust ladder, from least to most trust in the agent:

    read_only   nothing is sent; the tool answers `blocked` with the reason
    gated       held until a human approves it (CLI, admin HTTP, approval email)
    confirm     the human in the agent's client confirms through MCP elicitation;
                a client that cannot elicit falls back to `gated`
    monitored   sent at once, and the overseer gets a notice (never the link itself)
    autonomous  sent at once (the default: a reset email must not wait)

The mode is set globally (RESET_MCP_OVERSIGHT_MODE) and per email kind in the policy
file (RESET_MCP_POLICY_FILE, TOML). Recipient rules come first: deny lists win over
allow lists, a non-empty allow list admits only what it names, and a cap limits emails
to one address per hour across kinds. The decision says which rule matched.

Example policy file:

    mode = "monitored"                 # optional; overrides RESET_MCP_OVERSIGHT_MODE
    [kinds]
    password_reset = "autonomous"
    security_alert = "gated"
    [recipients]
    allow_domains = ["example.com"]
    deny_addresses = ["ceo@example.com"]
    deny_domains = ["mailinator.com"]
    max_per_hour = 10
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from reset_mcp.errors import ConfigError

KINDS = ("password_reset", "security_alert", "password_changed")
MODES = ("read_only", "gated", "confirm", "monitored", "autonomous")
Action = Literal["send", "send_and_notify", "hold", "confirm", "block"]
_ACTION_BY_MODE: dict[str, Action] = {
    "read_only": "block",
    "gated": "hold",
    "confirm": "confirm",
    "monitored": "send_and_notify",
    "autonomous": "send",
}


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    mode: str
    reason: str
    rule: str | None = None  # the recipient rule that matched, if one did


@dataclass(frozen=True, slots=True)
class RecipientRules:
    allow_addresses: frozenset[str] = frozenset()
    allow_domains: frozenset[str] = frozenset()
    deny_addresses: frozenset[str] = frozenset()
    deny_domains: frozenset[str] = frozenset()
    max_per_hour: int | None = None


def _domain_matches(domain: str, rules: Iterable[str]) -> str | None:
    # "example.com" covers "example.com" and its subdomains.
    for rule in rules:
        if domain == rule or domain.endswith("." + rule):
            return rule
    return None


@dataclass(frozen=True, slots=True)
class Policy:
    mode: str = "autonomous"
    kind_modes: dict[str, str] = field(default_factory=dict)
    recipients: RecipientRules = field(default_factory=RecipientRules)
    source: str = "environment"

    def mode_for(self, kind: str) -> str:
        return self.kind_modes.get(kind, self.mode)

    def recipient_rule(self, recipient: str, sent_last_hour: int) -> str | None:
        """The rule that forbids this recipient, or None."""
        address = recipient.lower()
        domain = address.rpartition("@")[2]
        r = self.recipients
        if address in r.deny_addresses:
            return f"deny_addresses: {address}"
        if (hit := _domain_matches(domain, r.deny_domains)) is not None:
            return f"deny_domains: {hit}"
        if (r.allow_addresses or r.allow_domains) and not (
            address in r.allow_addresses or _domain_matches(domain, r.allow_domains)
        ):
            return "allow lists: recipient is not on them"
        if r.max_per_hour is not None and sent_last_hour >= r.max_per_hour:
            return f"max_per_hour: {r.max_per_hour} emails to this address in the last hour"
        return None

    def decide(self, kind: str, recipient: str, *, sent_last_hour: int = 0) -> Decision:
        mode = self.mode_for(kind)
        if mode == "read_only":
            return Decision("block", mode, f"oversight mode read_only: no {kind} email is sent")
        rule = self.recipient_rule(recipient, sent_last_hour)
        if rule is not None:
            return Decision("block", mode, f"blocked by recipient rule {rule}", rule)
        action = _ACTION_BY_MODE[mode]
        reasons = {
            "hold": f"oversight mode gated: {kind} emails wait for a human's approval",
            "confirm": f"oversight mode confirm: {kind} emails need the user's confirmation",
            "send_and_notify": "oversight mode monitored: sent, and the overseer is told",
            "send": "oversight mode autonomous",
        }
        return Decision(action, mode, reasons[action])

    def describe(self) -> dict[str, Any]:
        r = self.recipients
        return {
            "source": self.source,
            "default_mode": self.mode,
            "modes": {kind: self.mode_for(kind) for kind in KINDS},
            "allow_addresses": sorted(r.allow_addresses),
            "allow_domains": sorted(r.allow_domains),
            "deny_addresses": sorted(r.deny_addresses),
            "deny_domains": sorted(r.deny_domains),
            "max_per_hour": r.max_per_hour,
        }


def _mode(value: Any, where: str) -> str:
    if value not in MODES:
        raise ConfigError(f"{where}: mode must be one of {', '.join(MODES)} (got {value!r})")
    return str(value)


def _names(data: dict[str, Any], key: str, where: str) -> frozenset[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}: [recipients] {key} must be a list of strings")
    return frozenset(v.strip().lower().lstrip("@") for v in value)


def load_policy(global_mode: str, policy_file: Path | None) -> Policy:
    """The policy from the global mode and the optional TOML file; errors name the file."""
    mode = _mode(global_mode, "RESET_MCP_OVERSIGHT_MODE")
    if policy_file is None:
        return Policy(mode=mode)
    where = str(policy_file)
    try:
        data = tomllib.loads(Path(policy_file).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"RESET_MCP_POLICY_FILE: cannot read {where}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"RESET_MCP_POLICY_FILE: {where} is not valid TOML: {exc}") from None
    unknown = set(data) - {"mode", "kinds", "recipients"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)} (expected mode, kinds, recipients)")
    if "mode" in data:
        mode = _mode(data["mode"], where)
    kinds = data.get("kinds", {})
    if not isinstance(kinds, dict) or set(kinds) - set(KINDS):
        raise ConfigError(f"{where}: [kinds] may name only {', '.join(KINDS)}")
    kind_modes = {kind: _mode(value, f"{where} [kinds] {kind}") for kind, value in kinds.items()}
    rec = data.get("recipients", {})
    if not isinstance(rec, dict):
        raise ConfigError(f"{where}: [recipients] must be a table")
    unknown = set(rec) - {"allow_addresses", "allow_domains", "deny_addresses", "deny_domains", "max_per_hour"}
    if unknown:
        raise ConfigError(f"{where}: unknown [recipients] keys {sorted(unknown)}")
    cap = rec.get("max_per_hour")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        raise ConfigError(f"{where}: [recipients] max_per_hour must be a positive integer")
    rules = RecipientRules(
        allow_addresses=_names(rec, "allow_addresses", where),
        allow_domains=_names(rec, "allow_domains", where),
        deny_addresses=_names(rec, "deny_addresses", where),
        deny_domains=_names(rec, "deny_domains", where),
        max_per_hour=cap,
    )
    return Policy(mode=mode, kind_modes=kind_modes, recipients=rules, source=where)
