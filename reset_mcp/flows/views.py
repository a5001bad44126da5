"""Records turned into what tools and pages show, with outsiders' text made data.

Every string someone else wrote (a user id or a name the agent gave, a User-Agent's
device, a location, contact-event metadata, an event type an agent chose, a provider's
error, an overseer's reason) passes `untrusted.as_data`: one line, no control, bidi or
invisible characters, capped. The result models list those fields (`models.untrusted_paths`)
and the MCP layer names them in each result's `_meta` as untrusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reset_mcp.models import ApprovalView, DeliveryView, GivenFacts, SendStatusView
from reset_mcp.store.records import ApprovalRecord, OutboxRow, SendRecord
from reset_mcp.untrusted import as_data
from reset_mcp.vocab import OutboxStatus

ID_CAP = 200
LABEL_CAP = 120
TEXT_CAP = 500
VALUE_CAP = 500  # a contact-event metadata value


def data(value: str | None, cap: int) -> str | None:
    return as_data(value, cap) or None if value is not None else None


def given_facts(raw: Mapping[str, Any] | None) -> GivenFacts | None:
    """What the requester gave (or a directory answered), stored with an approval."""
    if not raw:
        return None
    return GivenFacts(
        user_id=data(raw.get("user_id"), ID_CAP),
        name=data(raw.get("name"), LABEL_CAP),
        ip=data(raw.get("ip"), 64),
        device=data(raw.get("device"), LABEL_CAP),
        location=data(raw.get("location"), LABEL_CAP),
    )


def approval_view(a: ApprovalRecord) -> ApprovalView:
    return ApprovalView(
        id=a.id,
        request_id=a.send_id,
        kind=a.kind,
        recipient=a.recipient,
        summary=as_data(a.summary, TEXT_CAP),  # ours since facts were stored apart; older rows: free text
        given=given_facts(a.facts),
        requested_by=a.requested_by,
        reason=a.reason,
        status=a.status,
        created_at=a.created_at,
        expires_at=a.expires_at,
        decided_by=a.decided_by,
        decided_at=a.decided_at,
        decision_reason=data(a.decision_reason, TEXT_CAP),
    )


def delivery_view(r: OutboxRow) -> DeliveryView:
    return DeliveryView(
        outbox_id=r.id,
        kind=r.kind,
        recipient=r.recipient,
        status=r.status,
        attempts=r.attempts,
        next_attempt_at=r.next_attempt_at if r.status == OutboxStatus.PENDING else None,
        last_error=data(r.last_error, TEXT_CAP),
        sent_at=r.sent_at,
        message_id=r.message_id,
        provider_message_id=data(r.provider_message_id, ID_CAP),
    )


def send_status(send: SendRecord, approval: ApprovalRecord | None, rows: list[OutboxRow]) -> SendStatusView:
    return SendStatusView(
        request_id=send.id,
        kind=send.kind,
        recipient=send.recipient,
        status=send.status,
        reason=data(send.reason, TEXT_CAP),
        decision=send.decision,
        requested_by=send.requested_by,
        created_at=send.created_at,
        updated_at=send.updated_at,
        expires_at=send.expires_at,
        approval=approval_view(approval) if approval else None,
        deliveries=[delivery_view(r) for r in rows],
    )


def metadata_as_data(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Contact-event metadata as data: every key and text value one visible line, capped."""
    return {as_data(str(k), 64): as_data(v, VALUE_CAP) if isinstance(v, str) else v for k, v in meta.items() if str(k)}
