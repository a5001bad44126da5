"""The built wheel, installed into a fresh venv, runs `serve` and `preview` (what `uvx reset-mcp` gets).

The wheel is built from a copy of the sources (the worktree gets no build/ or egg-info),
and installed with `--no-index` from a wheelhouse kept in pytest's cache: the first run
fills it from the package index (setuptools for the build, then the wheel's own
dependencies, resolved from its metadata); later runs are offline. So a dependency
missing from pyproject.toml fails here, as it would for a user, even though the
development venv has it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import SECRET, reset_args

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "reset_mcp")


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)  # type: ignore[call-overload,no-any-return]


def _offline_then_online(offline: list[str], fill: list[str]) -> None:
    """Run `offline` (--no-index); if the wheelhouse lacks something, `fill` it from the index and retry."""
    if _run(offline).returncode == 0:
        return
    filled = _run(fill)
    assert filled.returncode == 0, filled.stderr
    again = _run(offline)
    assert again.returncode == 0, again.stderr


@pytest.fixture(scope="module")
def venv_bin(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    wheelhouse = Path(pytestconfig.cache.mkdir("wheelhouse"))
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    dist = work / "dist"
    where = ["--find-links", str(wheelhouse)]
    _offline_then_online(
        [*PIP, "wheel", "--no-deps", "--no-index", *where, "-w", str(dist), str(src)],
        [*PIP, "download", "-d", str(wheelhouse), "setuptools>=69"],  # the build backend, for isolation
    )
    (wheel,) = dist.glob("reset_mcp-*.whl")
    venv = work / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    _offline_then_online(
        [*PIP, "--python", str(python), "install", "--no-index", *where, str(wheel)],
        [*PIP, "download", "-d", str(wheelhouse), str(wheel)],
    )
    return python.parent


def _env(tmp_path: Path) -> dict[str, str]:
    # Only what a host would give: no PYTHONPATH, nothing of the development venv.
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "xdg"),
        "RESET_MCP_SECRET": SECRET,
    }


def test_the_installed_package_is_the_wheels(venv_bin: Path, tmp_path: Path) -> None:
    where = _run(
        [str(venv_bin / "python"), "-c", "import reset_mcp; print(reset_mcp.__file__)"],
        cwd=tmp_path,
        env=_env(tmp_path),
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv_bin.parent)


def test_preview_from_the_wheel(venv_bin: Path, tmp_path: Path) -> None:
    done = _run([str(venv_bin / "reset-mcp"), "preview", "password_reset"], cwd=tmp_path, env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "Reset your password" in done.stdout
    # The HTML part too: the templates and stylesheets are package data the wheel must carry.
    out = tmp_path / "preview"
    written = _run(
        [str(venv_bin / "reset-mcp"), "preview", "password_reset", "--out", str(out)], cwd=tmp_path, env=_env(tmp_path)
    )
    assert written.returncode == 0, written.stderr
    assert "<html" in out.with_suffix(".html").read_text().lower()


async def test_serve_on_stdio_from_the_wheel(venv_bin: Path, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=str(venv_bin / "reset-mcp"), args=["serve"], cwd=str(tmp_path), env=_env(tmp_path)
    )
    async with Client(params) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"request_password_reset", "preview_email", "consume_reset_token"} <= tools
        sent = await client.call_tool("request_password_reset", reset_args())
        assert not sent.is_error and sent.structured_content["status"] == "sent"
    # No RESET_MCP_DATA_DIR: the platform's user data folder, not the working directory.
    assert len(list((tmp_path / "xdg" / "reset-mcp" / "outbox").glob("*.eml"))) == 1
    assert not (tmp_path / ".reset-mcp").exists()
