"""Tool inputs and outputs: the pydantic models agents see (schemas in tool_schemas/).

No model here ever has a field for a token or a link: a reset link leaves the process
only inside the email.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ResetStatus = Literal["sent", "queued", "pending_approval", "blocked", "rate_limited", "rejected", "failed"]


class DeliveryInfo(BaseModel):
    backend: str = Field(description="Email backend that handled the message.")
    status: str = Field(
        description="sent | pending (will retry) | failed | expired | cancelled | sending (still in flight when "
        "the call stopped waiting, RESET_MCP_SEND_WAIT_SECONDS; the worker finishes it)"
    )
    elapsed_ms: float | None = Field(None, description="Time to hand the message to the backend (or waited so far).")
    attempts: int = 0
    error: str | None = None


class ResetRequestResult(BaseModel):
    request_id: str
    status: ResetStatus
    expires_at: datetime | None = Field(None, description="When the emailed link expires (sent/queued).")
    retry_after: int | None = Field(None, description="Seconds to wait, when rate_limited.")
    reason: str | None = Field(None, description="Why it was blocked, held, rejected or limited.")
    approval_id: str | None = None
    delivery: DeliveryInfo | None = None
    risk: str | None = Field(None, description="Account risk after this request: low | elevated | high.")
    alert_queued: bool = Field(False, description="A security alert to the owner was queued by this request.")


class VerifyResult(BaseModel):
    valid: bool
    user_id: str | None = None
    email: str | None = None
    expires_at: datetime | None = None
    reason: str | None = Field(None, description="One generic reason when invalid; details are audited.")


class ConsumeResult(BaseModel):
    consumed: bool
    user_id: str | None = None
    reason: str | None = None
    other_tokens_revoked: int = 0
    notice_status: str | None = Field(None, description="Status of the 'password changed' notice.")


class DeliveryView(BaseModel):
    outbox_id: str
    kind: str
    recipient: str
    status: str
    attempts: int
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None
    message_id: str
    provider_message_id: str | None = None


class ApprovalView(BaseModel):
    id: str
    request_id: str
    kind: str
    recipient: str
    summary: str
    requested_by: str
    reason: str
    status: str
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None


class SendStatusView(BaseModel):
    # Titled as tools have always published it (tool_schemas/); the class name keeps it
    # apart from `vocab.SendStatus`, the statuses themselves.
    model_config = ConfigDict(title="SendStatus")

    request_id: str
    kind: str
    recipient: str
    status: str
    reason: str | None = None
    decision: str
    requested_by: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    approval: ApprovalView | None = None
    deliveries: list[DeliveryView] = Field(default_factory=list)


class PendingSends(BaseModel):
    count: int = Field(description="How many are on this page.")
    pending: list[ApprovalView]
    next_cursor: str | None = Field(
        None, description="More are held: pass this as `cursor` for the next page. Absent on the last page."
    )


class ApprovalDecision(BaseModel):
    approval_id: str
    status: str
    request_id: str
    delivery: DeliveryInfo | None = None


class AbuseResult(BaseModel):
    attempts: int
    distinct_ips: list[str]
    distinct_devices: list[str]
    countries: list[str]
    first_attempt: datetime | None = None
    last_attempt: datetime | None = None
    risk: Literal["low", "elevated", "high"]
    reasons: list[str]
    recommended_action: Literal["allow", "captcha", "block", "alert"]
    ip_attempts: int | None = Field(None, description="Requests from the given IP for any account.")
    window_minutes: int


class ContactEventView(BaseModel):
    event_type: str
    created_at: datetime
    email: str | None = Field(None, description="The address as given (the inbox's spellings are one contact).")
    user_id: str | None = None
    ip: str | None = None
    device: str | None = None
    country: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ContactSummary(BaseModel):
    email: str
    user_ids: list[str]
    last_reset_request: datetime | None = None
    last_reset_ip: str | None = None
    known_ips: list[str]
    devices: list[str]
    countries: list[str]
    last_reported_unrequested: datetime | None = Field(None, description="The owner's last \"this wasn't me\".")
    own_only: bool = Field(False, description="True: only what this caller's own requests and records showed.")
    event_count: int
    recent_events: list[ContactEventView]


class EventRecorded(BaseModel):
    email: str
    event_type: str
    created_at: datetime


class RevokeResult(BaseModel):
    revoked: int


class ReportResult(BaseModel):
    reported: bool
    revoked: bool
    risk: str | None = None
    reason: str | None = None


class AlertResult(BaseModel):
    request_id: str | None = None
    status: str
    deduplicated: bool = False
    retry_after: int | None = None
    reason: str | None = None
    delivery: DeliveryInfo | None = None


class PreviewResult(BaseModel):
    kind: str
    locale: str
    subject: str
    text: str
    html: str
