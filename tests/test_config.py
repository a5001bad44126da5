"""Settings are checked at start; bad values stop the server with a clear message."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from reset_mcp.config import load_settings
from reset_mcp.data_dir import load_or_create_secret
from reset_mcp.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("ttl", [0, 5, 14, 61, 600])
def test_ttl_out_of_range_is_refused(ttl: int) -> None:
    with pytest.raises(ConfigError, match="RESET_MCP_TOKEN_TTL_MINUTES: must be between 15 and 60"):
        load_settings(token_ttl_minutes=ttl)


@pytest.mark.parametrize("ttl", [15, 30, 60])
def test_ttl_in_range(ttl: int) -> None:
    assert load_settings(token_ttl_minutes=ttl).token_ttl_minutes == ttl


@pytest.mark.parametrize(
    "url",
    [
        "http://app.example.com/reset?t={token}",
        "https://app.example.com/reset",
        "ftp://x/{token}",
        "https://a/{token}/{token}",
        "javascript:alert(1)//{token}",
    ],
)
def test_bad_reset_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="RESET_MCP_RESET_URL"):
        load_settings(reset_url=url)


@pytest.mark.parametrize(
    "url",
    ["https://app.example.com/reset?t={token}", "http://localhost:3000/r/{token}", "http://127.0.0.1/r?t={token}"],
)
def test_good_reset_urls(url: str) -> None:
    assert load_settings(reset_url=url).reset_url == url


def test_short_secret_is_refused_and_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(secret="too-short-secret")
    assert "at least 32 bytes" in str(info.value) and "too-short-secret" not in str(info.value)


def test_generated_secret_is_0600_and_reused(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    first = load_or_create_secret(settings)
    key = tmp_path / "secret.key"
    assert len(first) >= 32 and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert load_or_create_secret(settings) == first


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), **env}
    return subprocess.run(
        [sys.executable, "-m", "reset_mcp", *args], env=full, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_serve_refuses_bad_ttl_at_start(tmp_path: Path) -> None:
    proc = _cli(["serve"], {"RESET_MCP_TOKEN_TTL_MINUTES": "5", "RESET_MCP_DATA_DIR": str(tmp_path)}, tmp_path)
    assert proc.returncode == 2
    assert "RESET_MCP_TOKEN_TTL_MINUTES: must be between 15 and 60 minutes" in proc.stderr
    assert proc.stdout == ""  # stdout is the protocol channel


def test_doctor_masks_secrets_and_names_problems(tmp_path: Path) -> None:
    env = {
        "RESET_MCP_DATA_DIR": str(tmp_path),
        "RESET_MCP_SECRET": "s" * 40,
        "RESET_MCP_SMTP_PASSWORD": "hunter2",
        "RESET_MCP_OVERSIGHT_MODE": "monitored",
    }
    proc = _cli(["doctor"], env, tmp_path)
    assert proc.returncode == 1
    assert "hunter2" not in proc.stdout and "s" * 40 not in proc.stdout
    assert "******** (set)" in proc.stdout
    assert "RESET_MCP_OVERSIGHT_EMAIL" in proc.stdout and "PROBLEM" in proc.stdout
    ok = _cli(["doctor"], {**env, "RESET_MCP_OVERSIGHT_EMAIL": "boss@acme.test"}, tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "nothing is wrong" in ok.stdout and '"password_reset": "monitored"' in ok.stdout
