"""Sample values shared by the kinds' sample data: a fixed time and request, no clock read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reset_mcp.compose.models import RequestContext

SAMPLE_NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SAMPLE_LINK = "https://app.example.com/reset?token=sample-not-a-real-token"

SAMPLE_CONTEXT = RequestContext(
    at=SAMPLE_NOW,
    ip="203.0.113.42",
    device="Chrome 131 on Windows 10",
    location="Berlin, Germany",
)
EMPTY_CONTEXT = RequestContext(at=SAMPLE_NOW, ip="", device="", location="")


def sample_attempt(minutes_ago: int, ip: str, device: str, location: str) -> RequestContext:
    return RequestContext(at=SAMPLE_NOW - timedelta(minutes=minutes_ago), ip=ip, device=device, location=location)
