"""`reset-mcp serve --transport streamable-http` as its own process, for the HTTP rows."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from bench.common import bench_env, server_pythonpath
from bench.httpclient import Connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class HttpServer:
    """The real CLI entry point in a child process, with a `send`+`redeem` API key."""

    def __init__(
        self,
        data_dir: Path,
        sink_port: int,
        log_path: Path,
        launcher: list[str] | None = None,
        workers: int = 1,
        extra_env: dict[str, str] | None = None,  # RESET_MCP_* overrides (the cpu row's memory backend)
    ) -> None:
        self.data_dir = data_dir
        self.workers = workers
        # How `reset_mcp serve` is started (bench.profile puts pyinstrument in front).
        self.launcher = launcher or [sys.executable, "-m", "reset_mcp"]
        self.port = free_port()
        self.env = {
            **os.environ,
            **bench_env(data_dir, sink_port, RESET_MCP_HTTP_PORT=str(self.port), **(extra_env or {})),
            "PYTHONPATH": server_pythonpath(ROOT),
        }
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.key = ""

    def start(self) -> HttpServer:
        cli = [sys.executable, "-m", "reset_mcp"]
        created = subprocess.run(
            [*cli, "keys", "create", "--scope", "send", "--scope", "redeem", "--name", "bench"],
            env=self.env,
            cwd=self.data_dir.parent,  # not the repo: with -m, cwd comes first on sys.path
            capture_output=True,
            text=True,
            check=True,
        )
        self.key = created.stdout.strip().splitlines()[-1]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.launcher, "serve", "--transport", "streamable-http", "--port", str(self.port)]
                + (["--workers", str(self.workers)] if self.workers > 1 else []),
                env=self.env,
                cwd=self.data_dir.parent,  # not the repo: with -m, cwd comes first on sys.path
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the HTTP server exited ({self.proc.returncode}); see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode())
                    if b" 200 " in s.recv(1024):
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the HTTP server did not become healthy; see {self.log_path}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def connection(self) -> Connection:
        return Connection("127.0.0.1", self.port, {"Authorization": f"Bearer {self.key}"})

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGINT)  # uvicorn's graceful stop (and pyinstrument writes its report)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def db_files_mb(self) -> dict[str, float]:
        """Sizes of the SQLite file and its WAL: a WAL that keeps growing is a leak too."""
        return {p.name: round(p.stat().st_size / 2**20, 1) for p in sorted(self.data_dir.glob("reset-mcp.db*"))}

    def outbox_counts(self) -> dict[str, int]:
        """Read after stop: every outbox row's final status, straight from the SQLite file."""
        db = sqlite3.connect(self.data_dir / "reset-mcp.db")
        try:
            return dict(db.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())
        finally:
            db.close()

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
