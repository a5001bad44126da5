"""`reset-mcp schemas`: tool_schemas/<tool>.json from the live server's tool list."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from reset_mcp.app import build_app
from reset_mcp.config import Settings
from reset_mcp.server.mcp.server import build_server


async def tool_documents(settings: Settings) -> dict[str, dict[str, Any]]:
    server = build_server(lambda: build_app(settings))
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
    docs = {}
    for tool in tools:
        dumped = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
        dumped.pop("_meta", None)
        docs[tool.name] = dumped
    return docs


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(settings: Settings, out: str, *, check: bool = False) -> int:
    docs = anyio.run(tool_documents, settings)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    stale = []
    wanted = {f"{name}.json": render(doc) for name, doc in docs.items()}
    for existing in folder.glob("*.json"):
        if existing.name not in wanted:
            stale.append(existing.name)
            if not check:
                existing.unlink()
    for filename, text in sorted(wanted.items()):
        path = folder / filename
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(filename)
        if not check:
            path.write_text(text, encoding="utf-8")
    if check and stale:
        print(
            f"tool schemas differ from the server: {', '.join(sorted(stale))}; run reset-mcp schemas", file=sys.stderr
        )
        return 1
    print(f"{len(wanted)} tool schemas {'checked' if check else 'written'} in {folder}", file=sys.stderr)
    return 0
