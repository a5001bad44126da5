"""A PostgreSQL cluster of the test's own: initdb and pg_ctl on a spare port in a temp dir.

    cluster = cluster_or_skip()     # skips (or fails under CI=true / RESET_MCP_REQUIRE_POSTGRES=1)
    cluster.start()                 # pg_ctl start -w; cluster.url("postgres")
    cluster.create_database("app")  # a database in it, by name
    cluster.kill()                  # SIGKILL to the postmaster and its backends: a crash
    cluster.stop()                  # pg_ctl stop -m fast (or mode="immediate")
    cluster.start()                 # again, on the same port and data (crash recovery after kill)
    cluster.destroy()               # stop it and remove every file

Never the shared server at 5432: tests that stop, kill or fill a database must own it.
initdb refuses to run as root, so as root every command runs as the `postgres` OS user
in a directory under /tmp that user may enter.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.faults.sink import HOST, free_port
from tests.pg import REQUIRE_ENV, _admin, _run

OS_USER = "postgres"


def _required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get(REQUIRE_ENV) == "1"


def cluster_or_skip() -> PgCluster:
    """A new, initialised (not started) cluster, or a skip with the reason."""
    missing = [tool for tool in ("initdb", "pg_ctl", "postgres") if shutil.which(tool) is None]
    reason = f"{' and '.join(missing)} not on PATH" if missing else None
    if reason is None and os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            reason = f"running as root and there is no '{OS_USER}' OS user to run initdb as"
    if reason is not None:
        msg = f"a throwaway PostgreSQL cluster needs initdb: {reason}"
        if _required():
            pytest.fail(f"{msg} (CI=true or {REQUIRE_ENV}=1)", pytrace=False)
        pytest.skip(msg)
    cluster = PgCluster()
    cluster.init()
    return cluster


class PgCluster:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        # Not the test's tmp_path: pytest's directories are 0700 root, closed to `postgres`.
        self.base = Path(tempfile.mkdtemp(prefix="reset-mcp-pg-", dir="/tmp"))
        self.data = self.base / "data"
        self.logfile = self.base / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            user = pwd.getpwnam(OS_USER)
            os.chown(self.base, user.pw_uid, user.pw_gid)
        self.base.chmod(0o700)

    def _cmd(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv = [shutil.which(args[0]) or args[0], *args[1:]]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.base, **self._as_user())
        if check and done.returncode != 0:
            log = self.logfile.read_text()[-2000:] if self.logfile.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}\n{log}")
        return done

    def init(self) -> None:
        # --no-sync: a test cluster need not survive a power cut, only process kills.
        self._cmd("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def start(self, timeout: float = 60) -> None:
        """Run the postmaster as this process's child (not daemonised by pg_ctl), so that
        after a kill this process reaps it: an unreaped postmaster keeps its pid alive, and
        PostgreSQL refuses to start while the pid in postmaster.pid exists."""
        if self.running:
            return
        argv = [
            shutil.which("postgres") or "postgres", "-D", str(self.data), "-p", str(self.port), "-k", str(self.base),
            "-c", f"listen_addresses={HOST}", "-c", "fsync=off", "-c", "max_connections=100",
        ]  # fmt: skip
        with self.logfile.open("ab") as log:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=self.base, **self._as_user())
        deadline = time.monotonic() + timeout
        while not self._accepting():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {self.logfile.read_text()[-2000:]}")
            time.sleep(0.05)

    def _accepting(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1):
                pass
        except OSError:
            return False
        done = self._cmd("pg_ctl", "-D", str(self.data), "status", check=False)
        return done.returncode == 0 and "server is running" in done.stdout and self._ready_in_log()

    def _ready_in_log(self) -> bool:
        text = self.logfile.read_text(errors="replace")
        return text.rfind("ready to accept connections") > text.rfind("starting PostgreSQL")

    @staticmethod
    def _as_user() -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        user = pwd.getpwnam(OS_USER)
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _reap(self) -> None:
        if self._proc is not None:
            self._proc.wait(30)
            self._proc = None

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop`: "fast" disconnects clients and shuts down cleanly; "immediate"
        quits without a checkpoint (crash recovery at the next start)."""
        if self.running:
            self._cmd("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        self._reap()

    def kill(self) -> None:
        """SIGKILL to the postmaster and every backend: as the OOM killer or a power cut would."""
        pid = self.pid
        if pid is None:
            return
        victims = [pid, *self._children(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        self._reap()
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{v}").exists() and not _zombie(v) for v in victims):
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL processes survived SIGKILL")
            time.sleep(0.02)

    @property
    def pid(self) -> int | None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() and not _zombie(pid) else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @staticmethod
    def _children(pid: int) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry.name))
                except (OSError, IndexError, ValueError):
                    continue
        return found

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        _run(_admin(f'CREATE DATABASE "{name}"', self.url()))
        return self.url(name)

    def destroy(self) -> None:
        try:
            if self.running:
                self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
