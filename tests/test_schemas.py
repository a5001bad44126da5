"""tool_schemas/ matches the live server, and server.json is a valid registry manifest."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from reset_mcp import __version__
from reset_mcp.server.mcp.schemas import directory_documents, render, tool_documents

REPO = Path(__file__).resolve().parent.parent


async def test_tool_schemas_do_not_drift() -> None:
    live = await tool_documents()
    folder = REPO / "tool_schemas"
    on_disk = {p.stem: p.read_text(encoding="utf-8") for p in folder.glob("*.json")}
    again = "run `reset-mcp schemas --out tool_schemas`"
    assert set(on_disk) == set(live), f"tool list changed: {again}"
    for name, doc in live.items():
        assert on_disk[name] == render(doc), f"tool_schemas/{name}.json is stale: {again}"


async def test_the_schemas_with_an_account_directory_are_published_too() -> None:
    """With a directory the tools that name an account take `account`, never an address."""
    live = await directory_documents()
    folder = REPO / "tool_schemas" / "directory"
    on_disk = {p.stem: p.read_text(encoding="utf-8") for p in folder.glob("*.json")}
    assert set(on_disk) == set(live) == {
        "request_password_reset", "send_security_alert", "revoke_reset_tokens", "check_reset_abuse"
    }  # fmt: skip
    for name, doc in live.items():
        assert on_disk[name] == render(doc), f"tool_schemas/directory/{name}.json is stale: run `reset-mcp schemas`"
        properties = doc["inputSchema"]["properties"]
        assert "account" in properties and not {"email", "user_id", "name", "location"} & set(properties)


def test_server_json_is_valid_against_the_registry_schema() -> None:
    schema = json.loads((REPO / "tests/data/server.schema.2025-12-11.json").read_text(encoding="utf-8"))
    manifest = json.loads((REPO / "server.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker()).validate(manifest)
    assert len(manifest["description"]) <= 100 and manifest["name"].count("/") == 1
    assert manifest["version"] == __version__
    assert all(p["version"] == __version__ for p in manifest["packages"])
    assert f"mcp-name: {manifest['name']}" in (REPO / "README.md").read_text(encoding="utf-8")


def test_a_broken_manifest_is_caught() -> None:
    schema = json.loads((REPO / "tests/data/server.schema.2025-12-11.json").read_text(encoding="utf-8"))
    manifest = json.loads((REPO / "server.json").read_text(encoding="utf-8"))
    del manifest["packages"][0]["transport"]
    assert list(jsonschema.Draft7Validator(schema).iter_errors(manifest))
