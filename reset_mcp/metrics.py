"""Prometheus metrics, in the App's own registry (never the process-global one).

Counters and the latency histogram are updated as things happen (tool calls by the MCP
layer, deliveries as the dispatcher's observer); the gauges are set from the store when
/metrics is scraped, so every instance behind a load balancer reports the same shared
queue. Counters are per process, as Prometheus expects.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from reset_mcp.outbox.dispatcher import DeliveryOutcome
from reset_mcp.store.records import OUTBOX_STATUSES, OutboxRow
from reset_mcp.vocab import OutboxStatus

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Outcomes where the backend was actually asked to take the message (latency is meaningful).
_ATTEMPTED = frozenset({OutboxStatus.SENT, OutboxStatus.PENDING, OutboxStatus.FAILED})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tool_calls = Counter(
            "reset_mcp_tool_calls", "MCP tool calls by tool and outcome.", ["tool", "status"], registry=self.registry
        )
        self.deliveries = Counter(
            "reset_mcp_deliveries", "Delivery attempts by outcome.", ["status"], registry=self.registry
        )
        self.delivery_seconds = Histogram(
            "reset_mcp_delivery_seconds",
            "Time to hand one email to the backend.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.pending_approvals = Gauge(
            "reset_mcp_pending_approvals", "Emails held for a human's approval.", registry=self.registry
        )
        self.outbox_depth = Gauge(
            "reset_mcp_outbox_depth", "Outbox rows by status.", ["status"], registry=self.registry
        )
        # The audit chain's head: a scraper that keeps their history holds a record of the
        # chain outside the database, as the anchor file does (a cut-off tail shows).
        self.audit_head_seq = Gauge(
            "reset_mcp_audit_head_seq", "Sequence number of the newest audit entry.", registry=self.registry
        )
        self.audit_head = Info("reset_mcp_audit_head", "Hash of the newest audit entry.", registry=self.registry)
        self.anchor_failures = Gauge(
            "reset_mcp_audit_anchor_write_failures",
            "Audit anchor lines this process failed to write (see the log).",
            registry=self.registry,
        )
        # Children bound once: `labels()` takes a lock and builds a key on every call.
        self._delivered = {status: self.deliveries.labels(status) for status in OutboxStatus}

    def tool_call(self, tool: str, status: str) -> None:
        """`tool` must be a registered tool's name (or "unknown"): labels must not grow without bound."""
        self.tool_calls.labels(tool, status).inc()

    async def on_delivered(self, row: OutboxRow, outcome: DeliveryOutcome) -> None:
        self._delivered[outcome.status].inc()
        if outcome.status in _ATTEMPTED:
            self.delivery_seconds.observe(outcome.elapsed_ms / 1000)

    def render(
        self,
        outbox_counts: Mapping[str, int],
        pending_approvals: int,
        *,
        audit_head: tuple[int, str] | None = None,
        anchor_failures: int | None = None,
    ) -> bytes:
        self.pending_approvals.set(pending_approvals)
        if audit_head is not None:
            self.audit_head_seq.set(audit_head[0])
            self.audit_head.info({"hash": audit_head[1]})
        if anchor_failures is not None:
            self.anchor_failures.set(anchor_failures)
        for status in sorted({*OUTBOX_STATUSES, *outbox_counts}):
            self.outbox_depth.labels(status).set(outbox_counts.get(status, 0))
        return generate_latest(self.registry)
