"""Shared fixtures: an App on a temp SQLite file with a fake clock and an in-memory backend,
and an in-process MCP client talking to a server built around that same App."""

from __future__ import annotations

import email
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.config import Settings, load_settings
from reset_mcp.mail import OutgoingEmail
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.server.mcp.server import build_server

SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
TOKEN_RE = re.compile(r"token=([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)")


def token_from_text(text: str) -> str:
    match = TOKEN_RE.search(text)
    assert match, "no reset link in the email"
    return match.group(1)


def token_from(mail: OutgoingEmail) -> str:
    return token_from_text(mail.text)


def text_of_eml(path: Path) -> str:
    msg = email.message_from_bytes(path.read_bytes())
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()
    raise AssertionError("no text part")


def reset_args(**over: Any) -> dict[str, Any]:
    args = {"email": "alice@example.com", "user_id": "u-1", "ip": "198.51.100.7", "user_agent": CHROME_UA}
    args.update(over)
    return args


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    def make(**over: Any) -> Settings:
        base: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "secret": SECRET,
            "from_address": "auth@acme.test",
            "product_name": "Acme",
        }
        base.update(over)
        return load_settings(**base)

    return make


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
async def app(settings: Settings, clock: FakeClock, backend: MemoryBackend) -> AsyncIterator[App]:
    async with build_app(settings, clock=clock, backend=backend) as built:
        yield built


@asynccontextmanager
async def client_for(app: App, **client_kwargs: Any) -> AsyncIterator[Client]:
    @asynccontextmanager
    async def same_app() -> AsyncIterator[App]:
        yield app

    directory = app.service.deps.directory is not None
    async with Client(build_server(same_app, directory=directory), **client_kwargs) as c:
        yield c


@pytest.fixture
async def client(app: App) -> AsyncIterator[Client]:
    async with client_for(app) as c:
        yield c


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    # Every coroutine test runs under anyio's plugin, which runs async fixtures and the
    # test in one task: the MCP client's cancel scopes need that.
    import inspect

    if name.startswith("test") and inspect.iscoroutinefunction(obj):
        pytest.mark.anyio(obj)
