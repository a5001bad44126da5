"""REST routes beside MCP: the app's reset page (`redeem`), the overseer (`approve`),
support staff's contact reads (`contacts:read`), health and metrics. Handlers parse JSON
and call the service; what they raise is answered by the HTTP app's exception handlers
(`errors.refusal` for domain errors):

    400 bad JSON (or nested over 32 levels) / missing field / InvalidInputError    401 no or wrong key
    403 scope missing, or the requesting key deciding    404 NotFoundError
    409 ConflictError (already decided)                  413 body over 64 KiB
    429 too many failed verifications (Retry-After)      503 StoreError (database unavailable,
                                                             busy or full; Retry-After)

Failed token checks are throttled by the service (`policy.throttle.RedeemThrottle`), per
(key, client network): the client is the end user's `ip` when the app passes it, else
the connection's address. Every keyed route runs within the App's call bounds
(`bounds.CallBounds`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reset_mcp.deps import Caller
from reset_mcp.metrics import CONTENT_TYPE
from reset_mcp.server.http.auth import AppHolder, HTTPProblem, KeyAuth
from reset_mcp.store.records import APPROVAL_STATUSES
from reset_mcp.vocab import Scope

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024
MAX_TOKEN = 4096
# No route reads more than two levels; the parser recurses once a level, and a body of
# `[` nested thousands deep would exhaust the interpreter's stack (a 500, not a 400).
MAX_JSON_DEPTH = 32
_JSON_NESTING = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # a string (skipped whole) or a bracket


def json_depth(raw: bytes) -> int:
    """How deep the arrays and objects of `raw` nest (brackets inside strings ignored)."""
    depth = deepest = 0
    for match in _JSON_NESTING.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth = max(depth - 1, 0)
    return deepest


async def _json_body(request: Request, *, optional: bool = False) -> dict[str, Any]:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPProblem(413, f"request body larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if optional and not raw.strip():
        return {}
    # Counting brackets is C-speed; the scan runs only for a body that could be too deep.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and json_depth(raw) > MAX_JSON_DEPTH:
        raise HTTPProblem(400, f"request body must be JSON nested at most {MAX_JSON_DEPTH} levels deep")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise HTTPProblem(400, "request body must be JSON") from None
    if not isinstance(body, dict):
        raise HTTPProblem(400, "request body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str, *, required: bool, limit: int) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise HTTPProblem(400, f"'{name}' is required (a string)" if required else f"'{name}' must be a string")
    if len(value) > limit:
        raise HTTPProblem(400, f"'{name}': at most {limit} characters")
    return value


Handler = Callable[[Request, Caller], Awaitable[Response]]


def build_routes(holder: AppHolder, auth: KeyAuth, *, metrics_need_key: bool) -> list[Route]:

    def keyed(scope: str | None, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            app = holder.app  # None before the lifespan: the key check answers 401
            with app.bounds.applied() if app is not None else nullcontext():  # the key check and the call
                return await handler(request, await auth.caller(request, scope))

        return endpoint

    async def verify(request: Request, caller: Caller) -> Response:
        body = await _json_body(request)
        token = _text(body, "token", required=True, limit=MAX_TOKEN)
        ip = _text(body, "ip", required=False, limit=64)
        result = await holder.get().service.verify_reset_token(token or "", caller, ip=ip)
        return JSONResponse(result.model_dump(mode="json"))

    async def consume(request: Request, caller: Caller) -> Response:
        body = await _json_body(request)
        token = _text(body, "token", required=True, limit=MAX_TOKEN)
        ip = _text(body, "ip", required=False, limit=64)
        user_agent = _text(body, "user_agent", required=False, limit=2048)
        service = holder.get().service
        result = await service.consume_reset_token(token or "", caller, ip=ip, user_agent=user_agent)
        return JSONResponse(result.model_dump(mode="json"))

    async def list_approvals(request: Request, caller: Caller) -> Response:
        status = request.query_params.get("status") or None
        if status is not None and status not in APPROVAL_STATUSES:
            raise HTTPProblem(400, f"status must be one of {', '.join(APPROVAL_STATUSES)}")
        try:
            limit = min(max(int(request.query_params.get("limit", "100")), 1), 1000)
        except ValueError:
            raise HTTPProblem(400, "limit must be an integer") from None
        views = await holder.get().service.approvals.list(status, limit)
        return JSONResponse({"count": len(views), "approvals": [v.model_dump(mode="json") for v in views]})

    async def approve(request: Request, caller: Caller) -> Response:
        body = await _json_body(request, optional=True)
        reason = _text(body, "reason", required=False, limit=500)
        decision = await holder.get().service.approvals.approve(request.path_params["id"], caller, reason)
        return JSONResponse(decision.model_dump(mode="json"))

    async def reject(request: Request, caller: Caller) -> Response:
        body = await _json_body(request)
        reason = _text(body, "reason", required=True, limit=500)
        decision = await holder.get().service.approvals.reject(request.path_params["id"], caller, reason)
        return JSONResponse(decision.model_dump(mode="json"))

    async def contact(request: Request, caller: Caller) -> Response:
        email = request.query_params.get("email") or ""
        if not email.strip() or len(email) > 320:
            raise HTTPProblem(400, "'email' is required (at most 320 characters)")
        summary = await holder.get().service.contacts.get_contact(email, caller)
        return JSONResponse(summary.model_dump(mode="json"))

    async def healthz(request: Request) -> Response:
        """The database answers, and its writes are not failing (store/health.py): a load
        balancer takes an instance out while it can read but not write."""
        app = holder.app
        try:
            if app is None:
                raise RuntimeError("not started")
            with anyio.fail_after(5):
                await app.store.ping()
        except Exception as exc:  # any failure means "not healthy"; the reason goes to the log only
            log.warning("health check failed: %s", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "reason": "database unavailable"}, status_code=503)
        problem = app.store.write_problem()
        if problem is not None:
            log.warning("health check: %s", problem)
            return JSONResponse({"status": "unhealthy", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def scrape(request: Request, caller: Caller | None = None) -> Response:
        app = holder.get()
        if app.metrics is None:
            raise HTTPProblem(404, "metrics are off in this server")
        counts, pending = await app.service.admin.gauges()
        head = await app.service.admin.audit_head()
        failures = app.store.anchor.failures if app.store.anchor is not None else None
        body = app.metrics.render(counts, pending, audit_head=head, anchor_failures=failures)
        return Response(body, media_type=CONTENT_TYPE)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", keyed(None, scrape) if metrics_need_key else scrape, methods=["GET"]),
        Route("/v1/tokens/verify", keyed(Scope.REDEEM, verify), methods=["POST"]),
        Route("/v1/tokens/consume", keyed(Scope.REDEEM, consume), methods=["POST"]),
        Route("/v1/approvals", keyed(Scope.APPROVE, list_approvals), methods=["GET"]),
        Route("/v1/contacts", keyed(Scope.CONTACTS_READ, contact), methods=["GET"]),
        Route("/v1/approvals/{id}/approve", keyed(Scope.APPROVE, approve), methods=["POST"]),
        Route("/v1/approvals/{id}/reject", keyed(Scope.APPROVE, reject), methods=["POST"]),
    ]
