"""Icons for the server, its tools, prompt and resources: small SVGs as `data:` URIs.

Inline, so a client shows them with no request to any host (the spec asks clients to
take care with icon URLs; a data URI has no origin to trust). Plain shapes, no script,
no external reference. One per group of tools, so a client's list reads at a glance.
"""

from __future__ import annotations

from urllib.parse import quote

from mcp_types import Icon

_FRAME = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="#2563eb" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round">{}</svg>'
)
_SHAPES = {
    # a key inside a shield: the server
    "server": '<path d="M12 2l8 3v6c0 5-3.5 9-8 11-4.5-2-8-6-8-11V5z"/><circle cx="12" cy="10" r="2.5"/>'
    '<path d="M12 12.5V17m0-2h2"/>',
    # a key: minting, verifying, consuming, revoking reset links
    "key": '<circle cx="8" cy="15" r="4"/><path d="M11 12l9-9m-3 3l3 3m-6 0l2 2"/>',
    # a shield with an exclamation mark: abuse checks and security alerts
    "alert": '<path d="M12 2l8 3v6c0 5-3.5 9-8 11-4.5-2-8-6-8-11V5z"/><path d="M12 8v5m0 3v.01"/>',
    # an eye: read-only views of held sends and deliveries
    "view": '<path d="M2 12s4-7 10-7 10 7 10 7-4 7-10 7S2 12 2 12z"/><circle cx="12" cy="12" r="3"/>',
    # an envelope: previews, prompts about what the person will receive
    "mail": '<rect x="3" y="5" width="18" height="14" rx="2"/><path d="M3 7l9 6 9-6"/>',
    # a person: the contact history
    "person": '<circle cx="12" cy="8" r="4"/><path d="M4 21c0-4 4-7 8-7s8 3 8 7"/>',
    # a list with a check: the oversight policy
    "policy": '<path d="M9 6h11M9 12h11M9 18h11"/><path d="M3 6l1 1 2-2M3 12l1 1 2-2M3 18l1 1 2-2"/>',
}


def icon(name: str) -> list[Icon]:
    """The named icon as a one-element list, as `icons=` takes it."""
    svg = _FRAME.format(_SHAPES[name])
    return [Icon(src="data:image/svg+xml," + quote(svg, safe=""), mime_type="image/svg+xml", sizes=["any"])]


_TOOL_GROUPS = {
    "key": ("request_password_reset", "verify_reset_token", "consume_reset_token", "revoke_reset_tokens"),
    "alert": ("report_unrequested_reset", "check_reset_abuse", "send_security_alert"),
    "view": ("list_pending_sends", "get_send_status", "get_delivery_status"),
    "mail": ("preview_email",),
    "person": ("record_contact_event", "get_contact"),
}
_BY_TOOL = {tool: group for group, tools in _TOOL_GROUPS.items() for tool in tools}


def tool_icon(tool: str) -> list[Icon]:
    """A tool's icon: its group's, or the server's for a tool no group names."""
    return icon(_BY_TOOL.get(tool, "server"))
