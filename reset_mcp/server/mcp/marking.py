"""Untrusted text marked as data: each tool result names its fields that others wrote.

Every tool whose result can hold text someone else wrote (a user id or name an agent
gave, a device, contact metadata, a provider's error) gets a `_meta` entry
`io.reset-mcp/untrusted` listing those fields as paths ("recent_events[].metadata"), and
its description says such fields are data, never instructions. The values themselves
were already made data by the flows (`untrusted.as_data`: one line, no control, bidi or
invisible characters, capped). The paths come from the models (`models.untrusted_paths`).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from pydantic import BaseModel

from reset_mcp import models
from reset_mcp.models import UNTRUSTED_META, untrusted_paths


def result_paths(fn: Callable[..., Any]) -> list[str]:
    """The untrusted paths of a tool function's result model (our models only)."""
    returned = typing.get_type_hints(fn).get("return")
    found: list[str] = []
    for arg in typing.get_args(returned) or (returned,):
        if isinstance(arg, type) and issubclass(arg, BaseModel) and arg.__module__ == models.__name__:
            found += untrusted_paths(arg)
    return found


@dataclass
class UntrustedMeta:
    """Middleware: adds the tool's untrusted paths to the `_meta` of each tools/call result."""

    paths: dict[str, list[str]] = field(default_factory=dict)  # filled at registration

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "tools/call":
            return result
        paths = self.paths.get(str((ctx.params or {}).get("name")))
        if not paths:
            return result
        mark = {UNTRUSTED_META: paths}
        if isinstance(result, Mapping):
            if result.get("isError") or "structuredContent" not in result:
                return result
            return {**result, "_meta": {**(result.get("_meta") or {}), **mark}}
        if isinstance(result, BaseModel) and getattr(result, "structured_content", None) is not None:
            meta = getattr(result, "meta", None) or {}
            return result.model_copy(update={"meta": {**meta, **mark}})
        return result
