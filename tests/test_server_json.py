"""server.json says what the server really does: its variables, defaults, choices and secrets
are the Settings', its remote is our streamable-HTTP endpoint behind a secret bearer header.

(test_schemas.py validates the manifest against the registry's schema.)
"""

from __future__ import annotations

import enum
import json
import typing
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import SecretStr

from reset_mcp.config import Settings

REPO = Path(__file__).resolve().parent.parent
MANIFEST: dict[str, Any] = json.loads((REPO / "server.json").read_text(encoding="utf-8"))
SCHEMA = json.loads((REPO / "tests/data/server.schema.2025-12-11.json").read_text(encoding="utf-8"))
MAY_HOLD_A_PASSWORD = {"database_url"}  # postgresql://user:password@host/db


def _variables() -> list[dict[str, Any]]:
    return [v for p in MANIFEST["packages"] for v in p.get("environmentVariables", [])]


def _field(variable: dict[str, Any]) -> str:
    name = variable["name"]
    assert name.startswith("RESET_MCP_"), name
    field = name.removeprefix("RESET_MCP_").lower()
    assert field in Settings.model_fields, f"{name} is not a setting"
    return field


def _choices(annotation: Any) -> list[str]:
    """A Literal's values, or an enum's (the vocabulary's StrEnums)."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [member.value for member in annotation]
    return list(typing.get_args(annotation))


def test_the_manifest_is_valid() -> None:
    jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(MANIFEST)


def test_required_defaults_and_choices_are_the_settings() -> None:
    for variable in _variables():
        info = Settings.model_fields[_field(variable)]
        assert variable.get("isRequired", False) == info.is_required(), variable["name"]
        if "default" in variable:
            assert variable["default"] == str(info.get_default(call_default_factory=True)), variable["name"]
        if "choices" in variable:
            assert variable["choices"] == _choices(info.annotation), variable["name"]


def test_secrets_are_marked_secret() -> None:
    for variable in _variables():
        field = _field(variable)
        holds_secret = SecretStr in typing.get_args(Settings.model_fields[field].annotation)
        if holds_secret or field in MAY_HOLD_A_PASSWORD:
            assert variable["isSecret"] is True, variable["name"]
        else:
            assert variable.get("isSecret", False) is False, variable["name"]
    named = {v["name"] for v in _variables()}
    assert {"RESET_MCP_SECRET", "RESET_MCP_SMTP_PASSWORD", "RESET_MCP_EMAIL_API_KEY"} <= named


def test_the_remote_is_our_streamable_http_endpoint_with_a_secret_bearer() -> None:
    (remote,) = MANIFEST["remotes"]
    assert remote["type"] == "streamable-http"
    assert remote["url"].startswith("https://") and remote["url"].endswith("/mcp")
    for name in (piece.split("}")[0] for piece in remote["url"].split("{")[1:]):
        assert remote["variables"][name]["isRequired"] is True
    (header,) = remote["headers"]
    assert header["name"] == "Authorization" and header["value"].startswith("Bearer {")
    assert header["isSecret"] is True and header["isRequired"] is True
    assert header["variables"]["api_key"]["isSecret"] is True


def test_repository_and_website_match_the_name() -> None:
    namespace, name = MANIFEST["name"].split("/")
    owner = namespace.removeprefix("io.github.")
    assert MANIFEST["repository"] == {"url": f"https://github.com/{owner}/{name}", "source": "github"}
    assert MANIFEST["websiteUrl"].startswith(MANIFEST["repository"]["url"])
