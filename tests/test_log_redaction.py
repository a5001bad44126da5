"""No log line carries a token, at any level (issue 22 item 9).

A real `python -m reset_mcp serve` at RESET_MCP_LOG_LEVEL=DEBUG over each transport
(streamable HTTP, SSE, stdio): a reset link is mailed to the outbox folder, then its token
is verified and consumed through MCP tools and REST, and sent once in a URL's query
string. The SDK logs whole request bodies at DEBUG, uvicorn logs request lines; the
server's log redaction (`logs.py`) must leave no trace of the token or its jti in stderr.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from reset_mcp.logs import install_redaction
from tests.conftest import SECRET, reset_args, text_of_eml, token_from_text
from tests.httpserver import free_port, mcp_client, sse_mcp_client

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "reset_mcp"]


def _env(data_dir: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "RESET_MCP_DATA_DIR": str(data_dir),
        "RESET_MCP_SECRET": SECRET,
        "RESET_MCP_LOG_LEVEL": "DEBUG",
    }


def secrets_of(token: str) -> list[str]:
    """The token, its payload past the part every token shares, its signature, its jti."""
    _header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return [token, payload[20:], signature, claims["jti"]]


def newest_token(data_dir: Path) -> str:
    emls = sorted((data_dir / "outbox").glob("*-password_reset-*.eml"), key=lambda p: p.stat().st_mtime)
    return token_from_text(text_of_eml(emls[-1]))


def assert_clean(log: str, tokens: list[str], *, redacted: bool = True) -> None:
    """`redacted`: a token did reach a log line (and was redacted): the test saw a leak stopped."""
    assert " DEBUG " in log  # the level was on
    assert ("[redacted]" in log) is redacted
    for token in tokens:
        for secret in secrets_of(token):
            assert secret not in log


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def key(data_dir: Path) -> str:
    created = subprocess.run(
        [*CLI, "keys", "create", "--scope", "send", "--scope", "redeem", "--name", "t"],
        env=_env(data_dir), capture_output=True, text=True, check=True, cwd=data_dir.parent,
    )  # fmt: skip
    return created.stdout.strip().splitlines()[-1]


@contextmanager
def serving(data_dir: Path, transport: str, log: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [*CLI, "serve", "--transport", transport, "--port", str(port)],
            env=_env(data_dir), cwd=data_dir.parent, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@asynccontextmanager
async def client(transport: str, url: str, key: str, mode: str) -> AsyncIterator[Client]:
    connect = sse_mcp_client if transport == "sse" else mcp_client
    async with connect(url, key, mode=mode) as c:
        yield c


async def request(c: Client, data_dir: Path, user: str) -> str:
    result = await c.call_tool("request_password_reset", reset_args(user_id=user, email=f"{user}@example.com"))
    assert result.structured_content["status"] == "sent"
    return newest_token(data_dir)


async def redeem(c: Client, token: str) -> None:
    verified = await c.call_tool("verify_reset_token", {"token": token})
    assert verified.structured_content["valid"] is True
    consumed = await c.call_tool("consume_reset_token", {"token": token})
    assert consumed.structured_content["consumed"] is True
    again = await c.call_tool("consume_reset_token", {"token": token})  # refused: logged as a failure
    assert again.structured_content["consumed"] is False


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_no_token_in_the_logs_over_http_at_debug(
    data_dir: Path, key: str, tmp_path: Path, transport: str
) -> None:
    log = tmp_path / "server.log"
    tokens = []
    with serving(data_dir, transport, log) as url:
        for mode in ("legacy", "auto"):  # both protocol eras
            async with client(transport, url, key, mode) as c:
                tokens.append(await request(c, data_dir, mode))
                await redeem(c, tokens[-1])
            async with client(transport, url, key, mode) as c:
                tokens.append(await request(c, data_dir, f"rest-{mode}"))
        auth = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url, headers=auth, timeout=10) as http:
            for token in tokens[1::2]:
                answer = await http.post("/v1/tokens/verify", json={"token": token})
                assert answer.json()["valid"] is True
                # A client that puts the token in the URL: uvicorn logs the request line.
                misplaced = await http.get("/v1/tokens/verify", params={"token": token})
                assert misplaced.status_code in (404, 405)
                answer = await http.post("/v1/tokens/consume", json={"token": token})
                assert answer.json()["consumed"] is True
    assert_clean(log.read_text(), tokens)


async def test_no_token_in_the_logs_over_stdio_at_debug(data_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    params = StdioServerParameters(command=CLI[0], args=[*CLI[1:], "serve"], env=_env(data_dir), cwd=str(tmp_path))
    with log.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as c:
            result = await c.call_tool("request_password_reset", reset_args())
            assert result.structured_content["status"] == "sent"
            token = newest_token(data_dir)
            await redeem(c, token)
            with anyio.fail_after(10):
                while not list((data_dir / "outbox").glob("*-password_changed-*.eml")):
                    await anyio.sleep(0.05)
    # Over stdio the SDK logs no message bodies today; the check stands for when it does.
    assert_clean(log.read_text(), [token], redacted=False)


def test_the_redaction_covers_arguments_exceptions_and_other_handlers(caplog: pytest.LogCaptureFixture) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEiLCJqdGkiOiJzZWNyZXQtamkifQ.c2lnbmF0dXJlLXBhcnQ"
    install_redaction()
    install_redaction()  # twice is harmless
    logger = logging.getLogger("some.library")
    with caplog.at_level(logging.DEBUG):
        logger.debug("received %s", {"params": {"arguments": {"token": token}}})
        logger.info("GET /reset?token=%s HTTP/1.1", "opaque-link-value")
        try:
            raise ValueError(f"bad token {token}")
        except ValueError:
            logger.exception("failed")
    text = caplog.text  # pytest's own handler: the records themselves were cleaned
    assert token not in text and "c2lnbmF0dXJlLXBhcnQ" not in text and "opaque-link-value" not in text
    assert text.count("[redacted]") >= 3
