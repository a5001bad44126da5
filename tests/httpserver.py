"""A real uvicorn server on a free loopback port, in a background thread, for HTTP tests.

The server thread has its own event loop; tests talk to it only over sockets, as any
client would. Keys are created before the server starts, straight in its store.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import uvicorn
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from reset_mcp.app import App, build_app
from reset_mcp.config import Settings
from reset_mcp.keys import create_key
from reset_mcp.server.http.app import Transport, build_http_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_keys(settings: Settings, wanted: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
    """Create keys by name -> scopes; returns name -> (plaintext, key id)."""

    async def create() -> dict[str, tuple[str, str]]:
        out = {}
        async with build_app(settings) as app, app.store.transaction() as tx:
            for name, scopes in wanted.items():
                plaintext, record = await create_key(tx, name, scopes, app.clock.now())
                out[name] = (plaintext, record.id)
        return out

    # Its own thread and loop, so this works from sync and async tests alike.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, create).result()


@dataclass
class RunningServer:
    url: str
    settings: Settings
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)

    def key(self, name: str) -> str:
        return self.keys[name][0]

    def key_id(self, name: str) -> str:
        return self.keys[name][1]

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key(name)}"}


@contextmanager
def running_server(
    settings: Settings,
    keys: dict[str, list[str]],
    transport: Transport = "streamable-http",
    app_factory: Callable[[Settings], AbstractAsyncContextManager[App]] | None = None,
) -> Iterator[RunningServer]:
    """`app_factory`: builds the App the server runs (default: as `serve` does)."""
    port = free_port()
    settings = settings.model_copy(update={"http_host": "127.0.0.1", "http_port": port})
    created = make_keys(settings, keys)
    factory = (lambda: app_factory(settings)) if app_factory is not None else None
    asgi = build_http_app(settings, transport=transport, app_factory=factory)
    config = uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield RunningServer(f"http://127.0.0.1:{port}", settings, created)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@asynccontextmanager
async def mcp_client(url: str, key: str | None, **client_kwargs: Any) -> AsyncIterator[Client]:
    """The SDK client over streamable HTTP, sending `Authorization: Bearer <key>`."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http), **client_kwargs) as client,
    ):
        yield client


@asynccontextmanager
async def sse_mcp_client(url: str, key: str, **client_kwargs: Any) -> AsyncIterator[Client]:
    async with Client(sse_client(f"{url}/sse", headers={"Authorization": f"Bearer {key}"}), **client_kwargs) as c:
        yield c
