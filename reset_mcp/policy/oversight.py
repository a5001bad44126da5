"""The oversight policy: for each outgoing email, one decision.

The trust ladder, from least to most trust in the agent:

    read_only          nothing is sent; the tool answers `blocked` with the reason
    gated              held until a human approves it (CLI with an approve key, admin
                       HTTP, approval email)
    confirm            held as in `gated`, and the agent's client is pointed (MCP URL
                       elicitation) at this server's approvals page, where a person
                       signed in with an `approve` key decides: the agent's client
                       cannot answer for the person
    confirm_in_client  the agent's client asks its user (MCP form elicitation); this
                       trusts the client software: one that auto-accepts confirms its
                       own sends. A client that cannot ask falls back to `gated`
    monitored          sent at once, and the overseer gets a notice (never the link itself)
    autonomous         sent at once (the default: a reset email must not wait)

The mode is set globally (RESET_MCP_OVERSIGHT_MODE) and per email kind in the policy
file (RESET_MCP_POLICY_FILE, TOML). Recipient rules come first: deny lists win over
allow lists, a non-empty allow list admits only what it names, and a cap limits emails
to one address per hour across kinds. The decision says which rule matched.

Names are compared as recipients are stored: domains in Unicode (an `xn--` entry is
turned into its Unicode form when the file loads), lower case, no trailing dot; an
address entry also covers every spelling of its inbox (`ceo+x@`, and dots for Gmail:
`canonical.Canon`).

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
from typing import Any

from reset_mcp.canonical import Canon, canonical_domain
from reset_mcp.errors import ConfigError
from reset_mcp.vocab import Action, Mode

_ACTION_BY_MODE: dict[Mode, Action] = {
    Mode.READ_ONLY: Action.BLOCK,
    Mode.GATED: Action.HOLD,
    Mode.CONFIRM: Action.CONFIRM,
    Mode.CONFIRM_IN_CLIENT: Action.CONFIRM_IN_CLIENT,
    Mode.MONITORED: Action.SEND_AND_NOTIFY,
    Mode.AUTONOMOUS: Action.SEND,
}
_REASONS: dict[Action, str] = {
    Action.HOLD: "oversight mode gated: {kind} emails wait for a human's approval",
    Action.CONFIRM: "oversight mode confirm: {kind} emails wait for a person's decision on the approvals page",
    Action.CONFIRM_IN_CLIENT: "oversight mode confirm_in_client: {kind} emails need the user's confirmation",
    Action.SEND_AND_NOTIFY: "oversight mode monitored: sent, and the overseer is told",
    Action.SEND: "oversight mode autonomous",
}


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    mode: Mode
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
    mode: Mode = Mode.AUTONOMOUS
    kind_modes: dict[str, Mode] = field(default_factory=dict)
    recipients: RecipientRules = field(default_factory=RecipientRules)
    source: str = "environment"
    kinds: tuple[str, ...] = ()  # the kinds it decides on (for `describe`)
    canon: Canon = field(default_factory=Canon)  # what "the same inbox" means for address rules

    def mode_for(self, kind: str) -> Mode:
        return self.kind_modes.get(kind, self.mode)

    def recipient_rule(self, recipient: str, sent_last_hour: int) -> str | None:
        """The rule that forbids this recipient, or None."""
        local, _, domain = recipient.lower().rpartition("@")
        domain = canonical_domain(domain)
        address = f"{local}@{domain}"
        mailbox = self.canon.mailbox(address)
        r = self.recipients
        if address in r.deny_addresses or mailbox in r.deny_addresses:
            return f"deny_addresses: {address}"
        if (hit := _domain_matches(domain, r.deny_domains)) is not None:
            return f"deny_domains: {hit}"
        if (r.allow_addresses or r.allow_domains) and not (
            address in r.allow_addresses or mailbox in r.allow_addresses or _domain_matches(domain, r.allow_domains)
        ):
            return "allow lists: recipient is not on them"
        if r.max_per_hour is not None and sent_last_hour >= r.max_per_hour:
            return f"max_per_hour: {r.max_per_hour} emails to this address in the last hour"
        return None

    def decide(self, kind: str, recipient: str, *, sent_last_hour: int = 0) -> Decision:
        mode = self.mode_for(kind)
        if mode == Mode.READ_ONLY:
            return Decision(Action.BLOCK, mode, f"oversight mode read_only: no {kind} email is sent")
        rule = self.recipient_rule(recipient, sent_last_hour)
        if rule is not None:
            return Decision(Action.BLOCK, mode, f"blocked by recipient rule {rule}", rule)
        action = _ACTION_BY_MODE[mode]
        return Decision(action, mode, _REASONS[action].format(kind=kind))

    def describe(self) -> dict[str, Any]:
        r = self.recipients
        return {
            "source": self.source,
            "default_mode": self.mode,
            "modes": {kind: self.mode_for(kind) for kind in self.kinds},
            "allow_addresses": sorted(r.allow_addresses),
            "allow_domains": sorted(r.allow_domains),
            "deny_addresses": sorted(r.deny_addresses),
            "deny_domains": sorted(r.deny_domains),
            "max_per_hour": r.max_per_hour,
        }


MODE_MEANINGS: dict[Mode, str] = {
    Mode.READ_ONLY: "not sent: the request is answered blocked",
    Mode.GATED: "held until a human approves it on a channel agents do not hold",
    Mode.CONFIRM: "held until a person signed in on this server's approvals page decides; your client may be "
    "pointed there, and only that person can send it",
    Mode.CONFIRM_IN_CLIENT: "sent once the person in your client confirms (held when the client cannot ask)",
    Mode.MONITORED: "sent at once, and the overseer is told",
    Mode.AUTONOMOUS: "sent at once",
}


def agent_view(policy: Policy) -> dict[str, Any]:
    """What an agent may know of the policy: each kind's mode and what it means, and that
    recipient rules exist, not which addresses they name (an agent is not told which
    accounts escape oversight). The overseer sees everything in `reset-mcp doctor`."""
    r = policy.recipients
    return {
        "default_mode": policy.mode,
        "kinds": {
            kind: {"mode": policy.mode_for(kind), "means": MODE_MEANINGS[policy.mode_for(kind)]}
            for kind in policy.kinds
        },
        "recipient_rules": {
            "allow_list": bool(r.allow_addresses or r.allow_domains),
            "deny_rules": len(r.deny_addresses) + len(r.deny_domains),
            "max_per_hour": r.max_per_hour,
        },
        "note": "a recipient rule can block an email whatever its mode; the answer then says blocked",
    }


def _mode(value: Any, where: str) -> Mode:
    if value not in set(Mode):
        raise ConfigError(f"{where}: mode must be one of {', '.join(Mode)} (got {value!r})")
    return Mode(value)


def _names(data: dict[str, Any], key: str, where: str, canon: Canon) -> frozenset[str]:
    """The entries as recipients are compared: Unicode domains, an address as its inbox too."""
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}: [recipients] {key} must be a list of strings")
    names = set()
    for raw in value:
        entry = raw.strip().lower().lstrip("@")
        local, at, domain = entry.rpartition("@")
        if not at:
            names.add(canonical_domain(entry))
        else:
            address = f"{local}@{canonical_domain(domain)}"
            names.update((address, canon.mailbox(address)))
    return frozenset(names)


def load_policy(
    global_mode: str, policy_file: Path | None, kinds: tuple[str, ...], canon: Canon | None = None
) -> Policy:
    """The policy from the global mode and the optional TOML file; errors name the file.

    `kinds`: the email kinds the policy decides on (`EmailKinds.gated`); `canon`: the
    settings' mailbox keys (`Settings.canon`)."""
    canon = canon or Canon()
    mode = _mode(global_mode, "RESET_MCP_OVERSIGHT_MODE")
    if policy_file is None:
        return Policy(mode=mode, kinds=kinds, canon=canon)
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
    by_kind = data.get("kinds", {})
    if not isinstance(by_kind, dict) or set(by_kind) - set(kinds):
        raise ConfigError(f"{where}: [kinds] may name only {', '.join(kinds)}")
    kind_modes = {kind: _mode(value, f"{where} [kinds] {kind}") for kind, value in by_kind.items()}
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
        allow_addresses=_names(rec, "allow_addresses", where, canon),
        allow_domains=_names(rec, "allow_domains", where, canon),
        deny_addresses=_names(rec, "deny_addresses", where, canon),
        deny_domains=_names(rec, "deny_domains", where, canon),
        max_per_hour=cap,
    )
    return Policy(mode=mode, kind_modes=kind_modes, recipients=rules, source=where, kinds=kinds, canon=canon)
