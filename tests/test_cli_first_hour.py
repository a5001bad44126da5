"""The command line as a new user meets it: help for everything, previews that show this
configuration, `schemas` writing only where asked, absolute paths printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reset_mcp.cli.main import _parser, main
from reset_mcp.emails.kind import MASK
from reset_mcp.emails.registry import BUILTIN_NAMES
from tests.conftest import SECRET, client_for

REPO = Path(__file__).resolve().parent.parent


def walk(parser: argparse.ArgumentParser, path: str = "reset-mcp") -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{path} {name}", argparse.Action([], name, help=helps.get(name))
                yield from walk(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_subcommand_and_option_has_a_description() -> None:
    missing = [f"{where}: {action.dest}" for where, action in walk(_parser()) if not (action.help or "").strip()]
    assert missing == []
    assert sum(1 for _ in walk(_parser())) > 40  # the walk reached the nested commands


def test_preview_lists_its_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["preview", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(kind in text for kind in BUILTIN_NAMES)
    with pytest.raises(SystemExit) as refused:
        main(["preview", "welcome"])
    assert refused.value.code == 2 and "password_reset" in capsys.readouterr().err


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No RESET_MCP_DATA_DIR: the data folder is the platform's one, under this HOME."""
    for name in [n for n in os.environ if n.startswith("RESET_MCP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home" / ".local" / "share"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_schemas_print_and_write_only_where_asked(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert "request_password_reset" in printed and printed["request_password_reset"]["inputSchema"]
    assert sorted(p.name for p in home.iterdir()) == []  # no data folder, no database, no tool_schemas/
    assert main(["schemas", "--out", "mine"]) == 0
    assert sorted(p.stem for p in (home / "mine").glob("*.json")) == sorted(printed)
    assert f"in {home / 'mine'}" in capsys.readouterr().err
    assert main(["schemas", "--out", "mine", "--check"]) == 0
    with pytest.raises(SystemExit):
        main(["schemas", "--check"])
    assert "--check needs --out" in capsys.readouterr().err
    assert sorted(p.name for p in home.iterdir()) == ["mine"]


def test_the_repository_tool_schemas_match(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "--out", str(REPO / "tool_schemas"), "--check"]) == 0, capsys.readouterr().err


def test_preview_uses_the_configured_reset_url_and_no_report_link_unless_set(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESET_MCP_RESET_URL", "https://id.acme.example/reset?t={token}")
    assert main(["preview", "password_reset"]) == 0
    text = capsys.readouterr().out
    assert f"https://id.acme.example/reset?t={MASK}" in text
    assert "app.example.com" not in text and "sample-not-a-real-token" not in text
    assert "did not make" not in text and "report" not in text.lower()
    monkeypatch.setenv("RESET_MCP_REPORT_URL", "https://id.acme.example/not-me?t={token}")
    assert main(["preview", "password_reset"]) == 0
    assert f"https://id.acme.example/not-me?t={MASK}" in capsys.readouterr().out
    # The overseer's notice has approve/reject links only where a server answers them.
    assert main(["preview", "oversight_notice"]) == 0
    assert "/approve?" not in capsys.readouterr().out
    assert sorted(p.name for p in home.iterdir()) == []  # a preview writes nothing


def test_preview_out_prints_absolute_paths(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preview", "password_changed", "--out", "mail/changed"]) == 0
    said = capsys.readouterr().out.strip()
    assert said == f"wrote {home / 'mail' / 'changed.html'} and {home / 'mail' / 'changed.txt'}"


async def test_the_preview_email_tool_uses_the_configured_links(settings_factory, clock, backend) -> None:  # type: ignore[no-untyped-def]
    from reset_mcp.app import build_app

    for report in (None, "https://id.acme.example/not-me?t={token}"):
        settings = settings_factory(reset_url="https://id.acme.example/reset?t={token}", report_url=report)
        async with build_app(settings, clock=clock, backend=backend) as app, client_for(app) as client:
            result = await client.call_tool("preview_email", {"kind": "password_reset"})
            text = result.structured_content["text"]
            assert f"https://id.acme.example/reset?t={MASK}" in text and "app.example.com" not in text
            assert (f"https://id.acme.example/not-me?t={MASK}" in text) == (report is not None)
            assert ("did not make" in text) == (report is not None)


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "RESET_MCP_SECRET": SECRET, **env}
    return subprocess.run(
        [sys.executable, "-m", "reset_mcp", *args], env=full, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG_DATA_HOME is the Linux convention")
def test_keys_create_and_serve_share_the_folder_and_say_where(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    data = tmp_path / "xdg" / "reset-mcp"
    for folder in ("shell", "host"):
        (tmp_path / folder).mkdir()
    created = _cli(["keys", "create", "--scope", "send", "--name", "agent"], env, tmp_path / "shell")
    assert created.returncode == 0, created.stderr
    assert f"in the database sqlite:///{data / 'reset-mcp.db'}" in created.stderr
    # serve, started by a host in another folder, logs the same database and its outbox folder.
    served = subprocess.run(
        [sys.executable, "-m", "reset_mcp", "serve"],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "RESET_MCP_SECRET": SECRET, **env},
        cwd=tmp_path / "host",
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert served.returncode == 0, served.stderr
    assert f"database sqlite:///{data / 'reset-mcp.db'}" in served.stderr
    assert f"outbox folder {data / 'outbox'}" in served.stderr
    assert not any((tmp_path / "shell").iterdir()) and not any((tmp_path / "host").iterdir())
