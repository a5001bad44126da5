"""OpenTelemetry spans per MCP message: kept where something can record them.

The SDK puts `OpenTelemetryMiddleware` first on every server: each message opens a span,
builds its attributes and extracts a trace context from `_meta`, even when no tracer
provider is installed and the span is a no-op (a measurable share of a tool call's
server CPU, issue 24). The SDK documents dropping it from the middleware list as the way
to opt out. `RESET_MCP_TRACING`:

- `auto` (default): keep the spans when, at start, a tracer provider is installed (an
  OpenTelemetry SDK, or `opentelemetry-instrument`, which installs one before the server
  starts) or an exporter is named in the environment (`OTEL_TRACES_EXPORTER` other than
  `none`, `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`);
- `on`: always (a provider installed later, by the embedding application);
- `off`: never.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.mcpserver import MCPServer
from opentelemetry import trace

Tracing = Literal["auto", "on", "off"]
EXPORTER_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_wanted(setting: Tracing = "auto", environ: Mapping[str, str] | None = None) -> bool:
    if setting != "auto":
        return setting == "on"
    env = os.environ if environ is None else environ
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter and exporter != "none":
        return True
    if any(env.get(name) for name in EXPORTER_VARIABLES):
        return True
    provider = trace.get_tracer_provider()
    # The API's defaults: a proxy that nothing has replaced yet, or the explicit no-op.
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def apply_tracing(server: MCPServer[Any], setting: Tracing = "auto") -> bool:
    """Drop the SDK's span middleware unless tracing is wanted; True if spans stay."""
    if tracing_wanted(setting):
        return True
    server.middleware[:] = [m for m in server.middleware if not isinstance(m, OpenTelemetryMiddleware)]
    return False
