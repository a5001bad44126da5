"""The MCPServer: tools registered on it, the App built in its lifespan."""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer

from reset_mcp import __version__
from reset_mcp.app import App
from reset_mcp.server.mcp import tools_contacts, tools_reset, tools_views

INSTRUCTIONS = (
    "reset-mcp runs password resets. Call request_password_reset with the account's email, user_id and the "
    "requester's IP and User-Agent; the owner receives a signed one-time link (never shown to you). The app's "
    "reset page calls verify_reset_token and consume_reset_token. Use check_reset_abuse before acting on "
    "suspicious requests. Some emails may be held for a human's approval: you can see them "
    "(list_pending_sends, get_send_status) but not approve them."
)


def build_server(app_factory: Callable[[], AbstractAsyncContextManager[App]], **kwargs: Any) -> MCPServer[App]:
    @asynccontextmanager
    async def lifespan(_: MCPServer[App]) -> AsyncIterator[App]:
        async with app_factory() as app:
            yield app

    server: MCPServer[App] = MCPServer(
        "reset-mcp", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan, **kwargs
    )
    tools_reset.register(server)
    tools_views.register(server)
    tools_contacts.register(server)
    return server
