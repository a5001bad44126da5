"""Issue 21, item 7: the SQLite store on a small volume that fills up.

The volume is a real tmpfs of a few MB mounted for the test (root only: skipped with the
reason elsewhere), so SQLite meets a real ENOSPC, not a simulated one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reset_mcp.errors import StoreError, StoreFullError
from reset_mcp.store import open_store
from reset_mcp.store.records import SendRecord
from tests.faults.sink import REPO

pytestmark = pytest.mark.slow
NOW = datetime(2030, 5, 17, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def volume() -> Iterator[Path]:
    """An 8 MB tmpfs, mounted for this test."""
    where = Path(tempfile.mkdtemp(prefix="reset-mcp-vol-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        where.rmdir()
        pytest.skip(f"a small volume needs `mount -t tmpfs` (root): {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


def free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(volume: Path, leave: int) -> Path:
    """A file taking all the free space but `leave` bytes."""
    filler = volume / "filler"
    with filler.open("ab") as f:
        f.write(b"\0" * max(0, free(volume) - leave))
    return filler


def send(i: int | str, pad: int = 2000) -> SendRecord:
    return SendRecord(
        id=f"req_{i}", kind="password_reset", recipient="a@example.com", user_id="u1", status="queued",
        reason=None, requested_by="agent", decision="send", created_at=NOW, updated_at=NOW, payload={"pad": "y" * pad},
    )  # fmt: skip


async def churn(store: object, n: int, start: int = 0) -> None:
    """`n` small commits that rewrite the same few pages: the database stays small, the WAL
    grows by a few pages a commit (as resets do to the tails of tables and indexes)."""
    for i in range(start, start + n):
        async with store.transaction() as tx:  # type: ignore[attr-defined]
            await tx.update_send("req_0", "queued", f"churn {i}", NOW)


async def test_the_wal_never_fills_a_small_volume(volume: Path) -> None:
    store = await open_store(f"sqlite:///{volume / 'reset.db'}")
    async with store.transaction() as tx:
        await tx.insert_send(send(0))
    await churn(store, 2500)  # ~10 pages a commit: far more WAL than the 8 MB volume holds
    assert os.path.getsize(volume / "reset.db-wal") < 4 * 1024 * 1024
    await store.aclose()


async def test_a_full_disk_is_said_as_such_and_writes_resume_once_space_is_freed(volume: Path) -> None:
    store = await open_store(f"sqlite:///{volume / 'reset.db'}")
    filler = fill(volume, leave=600 * 1024)
    with pytest.raises(StoreError) as caught:
        for i in range(10_000):
            async with store.transaction() as tx:
                await tx.insert_send(send(i))
    assert isinstance(caught.value, StoreFullError), caught.value
    assert "disk" in str(caught.value) and "full" in str(caught.value)
    assert store.write_problem() == "disk full: writes fail until space is freed"  # what /healthz says
    filler.unlink()
    async with store.transaction() as tx:  # no restart needed
        await tx.insert_send(send("after"))
    assert store.write_problem() is None
    async with store.reading() as tx:
        assert await tx.get_send("req_after") is not None
    await store.aclose()


async def test_a_process_killed_on_a_full_disk_recovers_after_space_is_freed_and_a_restart(volume: Path) -> None:
    db = volume / "reset.db"
    store = await open_store(f"sqlite:///{db}")
    async with store.transaction() as tx:
        await tx.insert_send(send(0))
    await store.aclose()
    filler = fill(volume, leave=3 * 1024 * 1024)
    # Another process writes until the disk is full, and is killed there (no clean close).
    code = (
        "import anyio, sys\n"
        "from datetime import UTC, datetime\n"
        "from reset_mcp.store import open_store\n"
        "from reset_mcp.store.records import SendRecord\n"
        "async def main():\n"
        "    store = await open_store('sqlite:///' + sys.argv[1])\n"
        "    now = datetime.now(UTC)\n"
        "    try:\n"
        "        for i in range(100_000):\n"
        "            async with store.transaction() as tx:\n"
        "                await tx.insert_send(SendRecord(f'r{i}', 'password_reset', 'a@example.com', 'u', 'queued',\n"
        "                    None, 'agent', 'send', now, now, payload={'pad': 'y' * 2000}))\n"
        "        print('never-full', flush=True)\n"
        "    except Exception as exc:\n"
        "        print(type(exc).__name__, i, flush=True)\n"
        "    await anyio.sleep(60)\n"
        "anyio.run(main)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    try:
        said = proc.stdout.readline().split()
    finally:
        proc.kill()
        proc.wait()
    assert said and said[0] in ("StoreFullError", "StoreError"), said
    filler.unlink()  # space freed (about what the killed process wrote); a new process starts
    store = await open_store(f"sqlite:///{db}")
    await churn(store, 1500)  # far more WAL than the freed space
    async with store.reading() as tx:
        assert (await tx.get_send("req_0")).reason == "churn 1499"
    await store.aclose()
