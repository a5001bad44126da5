"""Files holding live links and secrets are private whatever the umask (issue 22 item 10).

Under umask 022 (and 002, common on desktops) a first start creates the data folder 0700
and the signing key, the SQLite database with its WAL and shared-memory files, the outbox
folder and each `.eml` 0600. A data folder an older version left open is closed at start.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reset_mcp.app import build_app
from reset_mcp.clock import FakeClock
from reset_mcp.config import Settings
from reset_mcp.private import tighten
from tests.conftest import client_for, reset_args


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o002], ids=["umask-022", "umask-002"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


async def test_a_first_start_makes_every_file_private(
    umask: int, settings_factory: Callable[..., Settings], clock: FakeClock, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    settings = settings_factory(secret=None, email_backend="outbox")  # the key is generated into the folder
    async with build_app(settings, clock=clock) as app, client_for(app) as client:
        result = await client.call_tool("request_password_reset", reset_args())
        assert result.structured_content["status"] == "sent"
        db = data / "reset-mcp.db"
        # While the store is open: SQLite made its WAL and shared-memory files.
        private = [db, data / "reset-mcp.db-wal", data / "reset-mcp.db-shm", data / "secret.key"]
        emls = list((data / "outbox").glob("*.eml"))
        assert len(emls) == 1
        assert {p.name: oct(mode(p)) for p in [*private, *emls]} == {p.name: "0o600" for p in [*private, *emls]}
        assert mode(data) == 0o700 and mode(data / "outbox") == 0o700
        assert not list((data / "outbox").glob("*.tmp"))
    # Nothing in the folder is open to group or others.
    for path in data.rglob("*"):
        assert mode(path) & 0o077 == 0, f"{path} is {oct(mode(path))}"


async def test_a_folder_an_older_version_left_open_is_closed_at_start(
    settings_factory: Callable[..., Settings], clock: FakeClock, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "outbox").mkdir(parents=True)
    os.chmod(data, 0o755)
    os.chmod(data / "outbox", 0o755)
    db = data / "reset-mcp.db"
    sqlite3.connect(db).close()
    os.chmod(db, 0o644)
    key = data / "secret.key"
    key.write_text("k" * 64 + "\n")
    os.chmod(key, 0o644)
    async with build_app(settings_factory(secret=None, email_backend="outbox"), clock=clock):
        assert mode(data) == 0o700 and mode(data / "outbox") == 0o700
        assert mode(db) == 0o600 and mode(key) == 0o600
        assert mode(data / "reset-mcp.db-wal") == 0o600


def test_a_shared_sticky_folder_is_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    tighten(shared)
    assert mode(shared) == 0o1777
