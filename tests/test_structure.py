"""The house rules of docs/ARCHITECTURE.md, read off the source: each fails when a change breaks one."""

from __future__ import annotations

import ast
import dataclasses
import typing
from collections.abc import Iterator
from pathlib import Path

from reset_mcp import models, vocab
from reset_mcp.app import App

PACKAGE = Path(__file__).resolve().parent.parent / "reset_mcp"
SERVER_ONLY = ("mcp", "mcp_types", "starlette", "uvicorn", "sse_starlette")
# Imports made inside a function, each for a reason other than dodging a cycle (the cycle
# check below counts them as edges all the same).
LAZY_IMPORTS = {
    # the backend's driver loads only when that backend is configured
    ("reset_mcp.mail", "reset_mcp.mail.outbox_dir"),
    ("reset_mcp.mail", "reset_mcp.mail.smtp"),
    ("reset_mcp.mail", "reset_mcp.mail.memory"),
    ("reset_mcp.mail", "reset_mcp.mail.http_providers"),
    ("reset_mcp.store", "reset_mcp.store.sqlite"),
    ("reset_mcp.store", "reset_mcp.store.postgres"),
    ("reset_mcp.directory", "reset_mcp.directory.http"),
    ("reset_mcp.directory", "reset_mcp.directory.sql_sqlite"),
    ("reset_mcp.directory", "reset_mcp.directory.sql_postgres"),
    # the MCP SDK, Starlette and uvicorn cost every other command a third of a second
    ("reset_mcp.cli.main", "reset_mcp.server.serve"),
    ("reset_mcp.cli.main", "reset_mcp.server.mcp.schemas"),
    # httpx, for `doctor --probe` with an OAuth issuer only
    ("reset_mcp.cli.probes", "reset_mcp.server.http.oauth_keys"),
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> Iterator[tuple[str, bool, ast.AST]]:
    """(imported module of the package, whether the import sits inside a function, node)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import sub` imports the submodule; `from pkg import name` the package.
            subs = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [n for n in subs if n in known] or [node.module]
        else:
            continue
        inside, up = False, node
        while up in parents:
            up = parents[up]
            inside = inside or isinstance(up, ast.FunctionDef | ast.AsyncFunctionDef)
        for name in names:
            yield name, inside, node


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: {n for n, _, _ in imports(p, known) if n in known and n != m} for m, p in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle() -> None:
    edges = graph()
    assert len(edges) > 60  # the walk saw the package
    assert cycles(edges) == []


def test_the_cycle_check_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_inside_functions_are_the_listed_ones() -> None:
    known = modules()
    lazy = {(m, n) for m, p in known.items() for n, inside, _ in imports(p, known) if inside and n in known}
    assert lazy == LAZY_IMPORTS


def test_mcp_starlette_and_uvicorn_are_imported_only_under_server() -> None:
    known = modules()
    leaks = [
        (m, n)
        for m, p in known.items()
        if not m.startswith("reset_mcp.server")
        for n, _, _ in imports(p, known)
        if n.split(".")[0] in SERVER_ONLY
    ]
    assert leaks == []


def test_store_transactions_open_only_in_flows_outbox_and_store() -> None:
    # The SQL directory's read-only transaction runs on the app's own database, not our store.
    allowed = ("reset_mcp.flows.", "reset_mcp.outbox.", "reset_mcp.store", "reset_mcp.directory.sql_postgres")
    opened = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("transaction", "reading")
                and not name.startswith(allowed)
            ):
                opened.append(f"{name}:{node.lineno}")
    assert opened == []


def test_nothing_is_assigned_onto_the_apps_parts_outside_app_py() -> None:
    parts = {f.name for f in dataclasses.fields(App)} | {"app", "holder"}
    assigned = []
    for name, path in modules().items():
        if name == "reset_mcp.app":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            else:
                continue
            for attribute in (a for t in targets for a in ast.walk(t) if isinstance(a, ast.Attribute)):
                chain, base = [], attribute
                while isinstance(base, ast.Attribute):
                    chain.insert(0, base.attr)
                    base = base.value
                if not isinstance(base, ast.Name):
                    continue
                chain.insert(0, base.id)
                own = chain[0] in ("self", "cls") and len(chain) == 2  # an object's own attribute
                if not own and any(part in parts for part in chain[:-1]):
                    assigned.append(f"{name}:{node.lineno}: {'.'.join(chain)}")
    assert assigned == []


def test_the_published_literals_are_the_vocabulary() -> None:
    assert set(typing.get_args(models.ResetStatus)) <= set(vocab.SendStatus)
    assert set(typing.get_args(models.AccountReplyStatus)) == set(vocab.AccountStatus)
    assert set(typing.get_args(models.AlertReasonName)) == set(vocab.AlertReason)
    risk = typing.get_args(models.AbuseResult.model_fields["risk"].annotation)
    assert set(risk) == set(vocab.Risk)
