"""The data folder: the platform's user data folder by default, absolute, and a folder that
cannot be written is one line naming it, not a traceback.

We run as root, who passes every permission check: the unwritable folders here are ones
that refuse root too (a path under a file, an immutable folder).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reset_mcp.app import build_app
from reset_mcp.config import load_settings
from reset_mcp.data_dir import ensure_data_dir
from reset_mcp.errors import ConfigError
from tests.conftest import SECRET

REPO = Path(__file__).resolve().parent.parent


def test_default_is_the_platform_user_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RESET_MCP_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    settings = load_settings()
    if sys.platform.startswith("linux"):
        assert settings.data_dir == tmp_path / "xdg" / "reset-mcp"
    assert settings.data_dir.is_absolute()
    assert settings.effective_database_url == f"sqlite:///{settings.data_dir / 'reset-mcp.db'}"


def test_a_relative_folder_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(data_dir="here/../data", outbox_dir="~/mail")
    assert settings.data_dir == tmp_path / "data"
    assert settings.outbox_dir == Path.home() / "mail"


def _one_line(exc: ConfigError) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


async def test_a_path_under_a_file_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings = load_settings(data_dir=blocker / "data", secret=SECRET)
    with pytest.raises(ConfigError) as caught:
        async with build_app(settings):
            pass
    assert _one_line(caught.value) == (
        f"cannot write to the folder {blocker / 'data'} (Not a directory); "
        "set RESET_MCP_DATA_DIR to a folder you can write"
    )


@pytest.fixture
def immutable_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder even root cannot create files in (`chattr +i`), where the file system allows it."""
    folder = tmp_path / "locked"
    folder.mkdir()
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (needs ext4-like file system and CAP_LINUX_IMMUTABLE)")
    try:
        yield folder
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def test_an_existing_folder_that_refuses_writes_is_caught_at_start(immutable_folder: Path) -> None:
    settings = load_settings(data_dir=immutable_folder, secret=SECRET)
    with pytest.raises(ConfigError) as caught:
        ensure_data_dir(settings)
    expected = f"cannot write to the folder {immutable_folder} (Operation not permitted)"
    assert _one_line(caught.value).startswith(expected)
    assert list(immutable_folder.iterdir()) == []


def test_an_outbox_folder_that_refuses_writes_names_its_own_variable(tmp_path: Path, immutable_folder: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", outbox_dir=immutable_folder, secret=SECRET)
    with pytest.raises(ConfigError, match="RESET_MCP_OUTBOX_DIR"):
        ensure_data_dir(settings)
    # Another email backend never writes there: nothing to check.
    ensure_data_dir(settings.model_copy(update={"email_backend": "memory"}))


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), **env}
    return subprocess.run(
        [sys.executable, "-m", "reset_mcp", *args], env=full, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG_DATA_HOME is the Linux convention")
def test_keys_created_in_one_folder_are_seen_from_another(tmp_path: Path) -> None:
    # No RESET_MCP_DATA_DIR: `keys create` in one shell folder and `keys list` in another
    # (as a host starting `serve` in / would) share the user data folder.
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    created = _cli(["keys", "create", "--scope", "send", "--name", "agent"], env, tmp_path / "one")
    assert created.returncode == 0, created.stderr
    listed = _cli(["keys", "list"], env, tmp_path / "two")
    assert listed.returncode == 0, listed.stderr
    assert "agent" in listed.stdout
    assert (tmp_path / "xdg" / "reset-mcp" / "reset-mcp.db").exists()
    assert not any((tmp_path / "one").iterdir()) and not any((tmp_path / "two").iterdir())


def test_the_cli_answers_one_line_for_an_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = _cli(["keys", "list"], {"RESET_MCP_DATA_DIR": str(blocker / "sub")}, tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"reset-mcp: cannot write to the folder {blocker / 'sub'} (Not a directory); "
        "set RESET_MCP_DATA_DIR to a folder you can write"
    ]


def test_http_serve_answers_one_line_for_an_unwritable_folder(tmp_path: Path) -> None:
    # Before the store opens it (the key count at start would otherwise meet a raw OSError).
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = _cli(["serve", "--transport", "streamable-http"], {"RESET_MCP_DATA_DIR": str(blocker / "sub")}, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"reset-mcp: cannot write to the folder {blocker / 'sub'} (Not a directory); "
        "set RESET_MCP_DATA_DIR to a folder you can write"
    ]
