"""`reset-mcp schemas`: each tool's published document (name, schemas, annotations) from
the live server's tool list, printed, or written as <folder>/<tool>.json when asked.

Listing tools needs no App: nothing is opened, created or migrated (no data folder, no
database), and nothing is written anywhere but the folder given with `--out`. The
folder holds the tools as a server without an account directory lists them (the
default); its `directory/` subfolder the ones whose schema differs when a directory is
configured (they take `account` instead of an address).
"""

from __future__ import annotations

import json
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio

from reset_mcp.app import App
from reset_mcp.server.mcp.server import build_server

DIRECTORY_FOLDER = "directory"


def _no_app() -> AbstractAsyncContextManager[App]:
    raise RuntimeError("listing tools needs no App")  # the server's lifespan is never entered


async def tool_documents(*, directory: bool = False) -> dict[str, dict[str, Any]]:
    docs = {}
    for tool in await build_server(_no_app, directory=directory).list_tools():
        dumped = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
        dumped.pop("_meta", None)
        docs[tool.name] = dumped
    return docs


async def directory_documents() -> dict[str, dict[str, Any]]:
    """The tools whose document differs when an account directory is configured."""
    plain = await tool_documents()
    return {name: doc for name, doc in (await tool_documents(directory=True)).items() if plain.get(name) != doc}


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(out: str | None, *, check: bool = False) -> int:
    """Print every tool's document (no `out`), or write/check `out`/<tool>.json and
    `out`/directory/<tool>.json."""
    docs = anyio.run(tool_documents)
    if out is None:
        sys.stdout.write(render(docs))
        return 0
    folder = Path(out).resolve()
    with_directory = anyio.run(directory_documents)
    stale = _write(folder, docs, check) + _write(folder / DIRECTORY_FOLDER, with_directory, check)
    if check and stale:
        print(
            f"tool schemas in {folder} differ from the server: {', '.join(sorted(stale))}; "
            f"run: reset-mcp schemas --out {out}",
            file=sys.stderr,
        )
        return 1
    count = len(docs) + len(with_directory)
    print(f"{count} tool schemas {'checked' if check else 'written'} in {folder}", file=sys.stderr)
    return 0


def _write(folder: Path, docs: dict[str, dict[str, Any]], check: bool) -> list[str]:
    if not check:
        folder.mkdir(parents=True, exist_ok=True)
    stale = []
    wanted = {f"{name}.json": render(doc) for name, doc in docs.items()}
    existing = sorted(folder.glob("*.json")) if folder.is_dir() else []
    for path in existing:
        if path.name not in wanted:
            stale.append(path.name)
            if not check:
                path.unlink()
    for filename, text in sorted(wanted.items()):
        path = folder / filename
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(filename)
        if not check:
            path.write_text(text, encoding="utf-8")
    return stale
