"""Prometheus metrics in their own registry (never the process-global one).

Counters and the latency histogram are updated as things happen (tool calls by the MCP
middleware, deliveries by the dispatcher's `on_delivered` hook); the two gauges are read
from the store at scrape time, so every instance behind a load balancer reports the same
shared queue. Counters are per process, as Prometheus expects.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from reset_mcp.app import App
from reset_mcp.outbox.dispatcher import DeliveryOutcome
from reset_mcp.store.records import OUTBOX_STATUSES, OutboxRow

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Statuses where the backend was actually asked to take the message (latency is meaningful).
_ATTEMPTED = frozenset({"sent", "pending", "failed"})
_PENDING_CAP = 100_000


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.known_tools: frozenset[str] = frozenset()
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

    def tool_call(self, tool: str, status: str) -> None:
        # Only registered names become labels: a caller cannot grow the series without bound.
        self.tool_calls.labels(tool if tool in self.known_tools else "unknown", status).inc()

    async def on_delivered(self, row: OutboxRow, outcome: DeliveryOutcome) -> None:
        self.deliveries.labels(outcome.status).inc()
        if outcome.status in _ATTEMPTED:
            self.delivery_seconds.observe(outcome.elapsed_ms / 1000)

    async def render(self, app: App) -> bytes:
        async with app.store.transaction() as tx:
            counts = await tx.outbox_counts()
            pending = await tx.list_approvals("pending", _PENDING_CAP)
        self.pending_approvals.set(len(pending))
        for status in sorted({*OUTBOX_STATUSES, *counts}):
            self.outbox_depth.labels(status).set(counts.get(status, 0))
        return generate_latest(self.registry)
