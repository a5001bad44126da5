"""Fixed sample data for previews and golden files: no token is minted, no clock read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reset_mcp.compose.models import (
    OversightNoticeData,
    PasswordChangedData,
    PasswordResetData,
    RequestContext,
    SecurityAlertData,
)

SAMPLE_NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

SAMPLE_CONTEXT = RequestContext(
    at=SAMPLE_NOW,
    ip="203.0.113.42",
    device="Chrome 131 on Windows 10",
    location="Berlin, Germany",
)


def _attempt(minutes_ago: int, ip: str, device: str, location: str) -> RequestContext:
    return RequestContext(at=SAMPLE_NOW - timedelta(minutes=minutes_ago), ip=ip, device=device, location=location)


def samples(*, minimal: bool = False) -> dict[str, object]:
    """One data object per kind; `minimal` leaves every optional field empty."""
    if minimal:
        return {
            "password_reset": PasswordResetData(
                reset_url="https://app.example.com/reset?token=sample-not-a-real-token",
                expires_at=SAMPLE_NOW + timedelta(minutes=15),
                ttl_minutes=15,
                context=RequestContext(at=SAMPLE_NOW, ip="", device="", location=""),
            ),
            "security_alert": SecurityAlertData(reason="Repeated password reset requests"),
            "password_changed": PasswordChangedData(changed_at=SAMPLE_NOW),
            "oversight_notice": OversightNoticeData(
                kind="password_reset",
                recipient="ada@example.com",
                decision="sent",
                summary="Password reset email",
                requested_by="agent support-bot",
            ),
        }
    return {
        "password_reset": PasswordResetData(
            reset_url="https://app.example.com/reset?token=sample-not-a-real-token",
            expires_at=SAMPLE_NOW + timedelta(minutes=15),
            ttl_minutes=15,
            context=SAMPLE_CONTEXT,
            to_name="Ada Lovelace",
            report_url="https://app.example.com/reset/report?request=sample",
        ),
        "security_alert": SecurityAlertData(
            reason="Several password reset requests from new places in a short time",
            attempts=(
                _attempt(3, "203.0.113.42", "Chrome 131 on Windows 10", "Berlin, Germany"),
                _attempt(9, "198.51.100.7", "Firefox 133 on Ubuntu", "Lagos, Nigeria"),
                _attempt(14, "192.0.2.15", "Safari 18 on iOS 18", "unknown"),
            ),
            to_name="Ada Lovelace",
            details="Further requests from these addresses are slowed down for one hour.",
        ),
        "password_changed": PasswordChangedData(
            changed_at=SAMPLE_NOW,
            context=SAMPLE_CONTEXT,
            to_name="Ada Lovelace",
        ),
        "oversight_notice": OversightNoticeData(
            kind="password_reset",
            recipient="ada@example.com",
            decision="held",
            summary="Password reset email for ada@example.com, requested through the support agent.",
            requested_by="agent support-bot (client ops-console)",
            approval_id="apr_01J9SAMPLE",
            approve_url="https://reset.example.com/approvals/apr_01J9SAMPLE/approve?sig=sample",
            reject_url="https://reset.example.com/approvals/apr_01J9SAMPLE/reject?sig=sample",
            expires_at=SAMPLE_NOW + timedelta(hours=24),
        ),
    }
