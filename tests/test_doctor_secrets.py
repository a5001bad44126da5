"""`doctor` never prints a database password, wherever the URL holds it (issue 22 item 11).

libpq and asyncpg take the password from the userinfo or from a `password=` query
parameter (its name percent-encoded or not); doctor prints the settings, the effective
database URL and the driver's error when it cannot connect. None of them may show it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reset_mcp.cli.doctor import run_doctor
from reset_mcp.config import load_settings
from reset_mcp.store.urls import hide_url_secrets, url_for_display
from tests.test_config import _cli

SECRET = "hunter2-Zq9"
URLS = [
    f"postgresql://app@127.0.0.1:1/reset?password={SECRET}",
    f"postgresql://127.0.0.1:1/reset?user=app&sslmode=disable&PASSWORD={SECRET}",
    f"postgresql://127.0.0.1:1/reset?user=app&pass%77ord={SECRET}",
    f"postgresql://app:{SECRET}@127.0.0.1:1/reset",
    f"postgresql://app:{SECRET}@127.0.0.1:1/reset?password={SECRET}",
    f"postgresql://app:hun@{SECRET}@127.0.0.1:1/reset",  # an unencoded '@' in the password
    f"postgresql://app:a/b?{SECRET}@127.0.0.1:1/reset",  # '/' and '?' too
    f"postgresql://app:{SECRET}@127.0.0.1:notaport/reset",  # the driver's error quotes the URL
    f"postgresql://app@[bad/reset?password={SECRET}",
    f"postgres://app:{SECRET.replace('-', '%2D')}@127.0.0.1:1/reset",
]


def pieces(secret: str) -> list[str]:
    return [secret, secret[:7], secret[4:]]


@pytest.mark.parametrize("url", URLS)
def test_doctor_never_prints_the_database_password(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = load_settings(
        data_dir=tmp_path,
        secret="s" * 40,
        database_url=url,
        db_pool_timeout_seconds=1,
        webhook_url=f"https://hooks:{SECRET}@hooks.example.com/in?token={SECRET}",
    )
    code = run_doctor(settings)
    out = capsys.readouterr()
    printed = out.out + out.err + caplog.text
    assert code == 1 and "PROBLEM: database" in printed  # it did try, and said why it failed
    assert "127.0.0.1" in printed or "[bad" in printed  # the URL is still shown, masked
    for piece in pieces(SECRET):
        assert piece not in printed


def test_doctor_subprocess_with_the_password_in_the_query(tmp_path: Path) -> None:
    env = {
        "RESET_MCP_DATA_DIR": str(tmp_path),
        "RESET_MCP_SECRET": "s" * 40,
        "RESET_MCP_DATABASE_URL": URLS[0],
        "RESET_MCP_DB_POOL_TIMEOUT_SECONDS": "1",
    }
    proc = _cli(["doctor"], env, tmp_path)
    assert proc.returncode == 1
    assert "password=***" in proc.stdout
    assert SECRET not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cr%40t@db:5432/reset", "postgresql://app:***@db:5432/reset"),
        ("postgresql://app@db/reset", "postgresql://app@db/reset"),
        ("postgresql://db/x?user=a&password=pw&ssl=1", "postgresql://db/x?user=a&password=***&ssl=1"),
        ("postgresql://db/x?sslpassword=pw;user=a", "postgresql://db/x?sslpassword=***;user=a"),
        ("postgresql://a:b@c@d/x?options=-c%20x%3D1", "postgresql://a:***@d/x?options=-c%20x%3D1"),
        ("sqlite:///data/reset-mcp.db", "sqlite:///data/reset-mcp.db"),
        ("https://api.example.com/v1?key=abc&region=eu", "https://api.example.com/v1?key=***&region=eu"),
        ("not a url", "not a url"),
    ],
)
def test_url_for_display(url: str, shown: str) -> None:
    assert url_for_display(url) == shown


def test_hide_url_secrets_takes_out_raw_and_decoded_values() -> None:
    url = "postgresql://app:p%40ss@db/x?password=q%2Fw"
    assert hide_url_secrets("failed: p%40ss p@ss q%2Fw q/w", url) == "failed: *** *** *** ***"
