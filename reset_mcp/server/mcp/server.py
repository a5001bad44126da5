"""The MCPServer: tools, the prompt and the resources registered on it, the App lent by its lifespan.

`ResetServer` is the SDK's MCPServer with two public methods specialised, each in its own
module: `call_tool` answers refused arguments in one line (arguments.py), `read_resource`
reads the resources that depend on their caller (resources.py).
"""

import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer, RequestStateSecurity

from reset_mcp import __version__
from reset_mcp.app import App
from reset_mcp.metrics import Metrics
from reset_mcp.server.mcp import prompts, resources, tools_contacts, tools_reset, tools_views
from reset_mcp.server.mcp.arguments import ArgumentErrors
from reset_mcp.server.mcp.errors import Tools
from reset_mcp.server.mcp.icons import icon
from reset_mcp.server.mcp.marking import UntrustedMeta
from reset_mcp.server.mcp.param_headers import skip_undeclared_header_checks
from reset_mcp.server.mcp.scopes import ScopedTools
from reset_mcp.server.mcp.tracing import Tracing, apply_tracing

INSTRUCTIONS = (
    "reset-mcp runs password resets. Call request_password_reset with the account's email, user_id and the "
    "requester's IP and User-Agent; the owner receives a signed one-time link (never shown to you). The app's "
    "reset page calls verify_reset_token and consume_reset_token. Use check_reset_abuse before acting on "
    "suspicious requests. Some emails may be held for a human's approval: you can see them "
    "(list_pending_sends, get_send_status, the resource reset://my-pending-sends) but not approve them. "
    "The prompt handle_forgot_password walks through a whole reset; reset://policy says which emails wait."
)
INSTRUCTIONS_WITH_DIRECTORY = (
    "reset-mcp runs password resets. Call request_password_reset with the account as the person named it "
    "(their email or user id) and the requester's IP and User-Agent; the app's directory gives the address, "
    "and the owner receives a signed one-time link (never shown to you). The answer is the same whether the "
    "account exists or not. Some emails may be held for a human's approval, which you cannot give."
)


def state_key_of(secret: str) -> str:
    """The key that seals the state of multi-round calls, derived from the server secret, so
    every worker and instance sharing the secret reads another's state back."""
    return hmac.new(secret.encode(), b"reset-mcp/mcp-request-state/v1", hashlib.sha256).hexdigest()


TITLE = "Password resets"


class ResetServer(ArgumentErrors, resources.CallerResources):
    """The MCPServer with readable argument errors and caller-dependent resources."""


def build_server(
    app_factory: Callable[[], AbstractAsyncContextManager[App]],
    *,
    count_calls: Callable[[], Metrics | None] | None = None,
    directory: bool = False,
    state_key: str | None = None,
    tracing: Tracing = "auto",
    **kwargs: Any,
) -> MCPServer[App]:
    """`count_calls`: the metrics to count tool calls in, and scope-filter `tools/list` (HTTP).
    `directory`: an account directory is configured, so the tools take an account, not an
    address (`Settings.has_directory`). `state_key`: seals the state of multi-round calls
    (modern protocol era) so that any worker or instance can read it back; without one,
    a key of this process's own. `tracing`: OpenTelemetry spans per message (tracing.py)."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[App]) -> AsyncIterator[App]:
        async with app_factory() as app:
            yield app

    marking = UntrustedMeta()  # filled below, before any call can arrive
    middleware: list[Any] = [marking]
    names: set[str] = set()
    if count_calls is not None:
        middleware.append(ScopedTools(names, count_calls))
    if state_key is not None:
        kwargs["request_state_security"] = RequestStateSecurity(keys=[state_key])
    server = ResetServer(
        "reset-mcp",
        title=TITLE,
        icons=icon("server"),
        version=__version__,
        instructions=INSTRUCTIONS_WITH_DIRECTORY if directory else INSTRUCTIONS,
        lifespan=lifespan,
        middleware=middleware,
        **kwargs,
    )
    apply_tracing(server, tracing)
    skip_undeclared_header_checks(server)
    tools = Tools(server)
    tools_reset.register(tools, directory=directory)
    tools_views.register(tools)
    tools_contacts.register(tools, directory=directory)
    names.update(tools.names)
    prompts.register(server)
    resources.register(server)
    marking.paths.update(tools.untrusted)
    return server
