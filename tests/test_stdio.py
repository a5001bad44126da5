"""A real `python -m reset_mcp serve` over stdio, driven by the SDK client."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

from tests.conftest import SECRET, reset_args, text_of_eml, token_from_text

REPO = Path(__file__).resolve().parent.parent


def server_params(data_dir: Path, **env: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "reset_mcp", "serve"],
        cwd=str(data_dir.parent),
        env={
            "PYTHONPATH": str(REPO),
            "RESET_MCP_DATA_DIR": str(data_dir),
            "RESET_MCP_SECRET": SECRET,
            "PATH": os.environ.get("PATH", ""),
            **env,
        },
    )


async def test_stdio_server_sends_the_reset_email_into_the_outbox(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for mode in ("legacy", "auto"):
        async with Client(server_params(data), mode=mode) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert "request_password_reset" in tools
            result = await client.call_tool(
                "request_password_reset", reset_args(email=f"{mode}@example.com", user_id=mode)
            )
            assert not result.is_error, result.content
            assert result.structured_content["status"] == "sent"
            assert result.structured_content["delivery"]["backend"] == "outbox"
    emls = sorted((data / "outbox").glob("*.eml"))
    assert len(emls) == 2
    token = token_from_text(text_of_eml(emls[0]))
    async with Client(server_params(data)) as client:
        verified = await client.call_tool("verify_reset_token", {"token": token})
        assert verified.structured_content["valid"] is True
        consumed = await client.call_tool("consume_reset_token", {"token": token})
        assert consumed.structured_content["consumed"] is True
        with anyio.fail_after(10):
            while len(list((data / "outbox").glob("*.eml"))) < 3:  # the password-changed notice
                await anyio.sleep(0.05)
    assert (data / "reset-mcp.db").exists()
