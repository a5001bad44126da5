"""`serve --workers N`: N worker processes, each with its own listening socket on one port.

Why not uvicorn's own `--workers`: its supervisor binds one socket and every worker
accepts from it. An event loop that wakes for a new connection accepts every pending
one at once, so a burst of keep-alive connections lands on whichever worker woke first
(on the bench machine nearly all of them on one worker; bench/README.md). Here each worker binds its own
socket with `SO_REUSEPORT`, and the kernel spreads new connections over the listening
sockets by a hash of their addresses and ports, whatever the workers are doing.

The supervisor (this process) reserves the port first: it binds a socket to it and never
listens on it (a socket that does not listen takes no connections), so `--port 0` gets
one port for every worker, and a restarted worker binds the same port again. A worker
listens only once its app has started, so no connection reaches one that cannot answer.
It restarts a worker that dies after it was serving; one that dies before it ever served
(its app failed to start) stops the whole server instead: a broken configuration would
fail every restart alike. A worker says it is serving through an event uvicorn's start-up
sets, not by how long it lived, so a slow start on a busy machine is not a crash loop.
SIGINT or SIGTERM stops every worker gracefully: each lets its requests finish and
waits for its deliveries in flight, as a single server does. On Linux a worker is also
stopped so when the supervisor dies without a word (SIGKILL, OOM): PR_SET_PDEATHSIG.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event as Ready
from typing import Any

import uvicorn
from starlette.applications import Starlette

from reset_mcp.config import Settings
from reset_mcp.data_dir import load_or_create_secret
from reset_mcp.logs import configure_logging
from reset_mcp.server.http.app import build_http_app
from reset_mcp.server.http.guard import GuardedConfig, limits_for

log = logging.getLogger("reset_mcp")
STOP_SECONDS = 60.0  # graceful stop (requests, then deliveries in flight), then SIGKILL
POLL_SECONDS = 0.5


def reuseport_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def _socket(host: str, port: int, *, reuseport: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # SO_REUSEADDR: the closed connections a previous run left in TIME_WAIT do not block.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host.strip("[]"), port))
    return sock


def _refuse_a_port_in_use(host: str, port: int) -> None:
    """OSError if something listens on the port already.

    With `SO_REUSEPORT` alone, a second server started by mistake on the same port (same
    user) would bind beside the first and take half of its connections, silently. A
    bind without it fails where any socket listens.
    """
    _socket(host, port, reuseport=False).close()


def _die_with_supervisor() -> None:
    """On Linux, have the kernel send this worker SIGTERM (a graceful stop) when the
    supervisor dies, even by SIGKILL, so no worker outlives it holding the port."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    supervisor = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != supervisor:  # it died before the line above: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)


class _ServingServer(uvicorn.Server):
    """uvicorn's server that sets `serving` once its app has started and it listens."""

    def __init__(self, config: uvicorn.Config, serving: Ready) -> None:
        super().__init__(config)
        self._serving = serving

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._serving.set()


def _worker(settings: Settings, options: dict[str, Any], serving: Ready) -> None:
    """One worker process: the whole server, on its own socket in the port's group."""
    _die_with_supervisor()
    config = GuardedConfig(worker_app(settings), limits=limits_for(settings), **options)
    server = _ServingServer(config, serving)
    server.run(sockets=[_socket(settings.http_host, settings.http_port)])
    sys.exit(0 if server.started else 3)


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        options: dict[str, Any],
        # A module-level function (spawn pickles it by name), given the settings, the options
        # and the event to set once it serves.
        target: Callable[[Settings, dict[str, Any], Ready], None] = _worker,
    ) -> None:
        self._target = target
        self._workers = settings.http_workers
        self._options = options
        host, port = settings.http_host, settings.http_port
        if port:
            _refuse_a_port_in_use(host, port)
        self._reserved = _socket(host, port)  # bound, never listening: holds the port
        self.port = int(self._reserved.getsockname()[1])
        # What every worker runs with, the reserved port included (`--port 0`): one object,
        # pickled to each spawned process, not rebuilt from the environment.
        self.settings = settings.model_copy(update={"http_port": self.port})
        self._stop = threading.Event()
        self._processes: list[tuple[SpawnProcess, Ready]] = []
        self.started = 0  # worker processes started, restarts included

    def _start(self) -> tuple[SpawnProcess, Ready]:
        context = multiprocessing.get_context("spawn")
        serving = context.Event()
        process = context.Process(
            target=self._target, args=(self.settings, self._options, serving), name="reset-mcp-worker", daemon=False
        )
        process.start()
        self.started += 1
        return process, serving

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stop.set()

    def stop(self) -> None:
        """What SIGINT and SIGTERM do, from another thread."""
        self._stop.set()

    def run(self) -> int:
        """Start the workers, keep them running until SIGINT or SIGTERM; the exit code."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
        code = 0
        try:
            self._processes = [self._start() for _ in range(self._workers)]
            log.info("worker processes %s", ", ".join(str(p.pid) for p, _ in self._processes))
            while not self._stop.wait(POLL_SECONDS):
                for index, (process, serving) in enumerate(self._processes):
                    if process.is_alive():
                        continue
                    if not serving.is_set():
                        log.error(
                            "worker %s exited with code %s before it served: stopping the server (see above)",
                            process.pid, process.exitcode,
                        )  # fmt: skip
                        code = 1
                        self._stop.set()
                        break
                    log.warning("worker %s exited with code %s; starting another", process.pid, process.exitcode)
                    self._processes[index] = self._start()
        finally:
            self._stop_all()
            self._reserved.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return code

    def _stop_all(self) -> None:
        for process, _ in self._processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process, _ in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker %s did not stop in %.0f s: killed", process.pid, STOP_SECONDS)
                process.kill()
                process.join()


def serve_workers(settings: Settings, options: dict[str, Any]) -> int:
    """`serve --workers N`: the supervisor in this process, the workers spawned.

    Each worker is a whole server (its own App, job runner and SQLite connection or
    PostgreSQL pool) over the one database, as separate instances would be: outbox rows
    are leased, so each email is delivered by one of them. Python runs one thread of
    bytecode at a time, so a process uses one core; N workers use N. What stays per
    worker: /metrics counts (each scrape answers for one worker), and the
    failed-token-check throttle (a client gets N times the failures before it waits).
    """
    if not reuseport_supported():
        print("reset-mcp: --workers needs SO_REUSEPORT (Linux, macOS, the BSDs)", file=sys.stderr)
        return 2
    # Before the workers start: with no RESET_MCP_SECRET, the first start generates the
    # key file, and N processes racing to create it could read it half-written.
    load_or_create_secret(settings)
    try:
        supervisor = Supervisor(settings, options)
    except OSError as exc:
        print(f"reset-mcp: cannot bind {settings.http_host}:{settings.http_port}: {exc}", file=sys.stderr)
        return 1
    where = f"{supervisor.settings.public_base_url}/mcp"
    log.info("reset-mcp streamable-http on %s, %d worker processes", where, settings.http_workers)
    return supervisor.run()


def worker_app(settings: Settings) -> Starlette:
    """The ASGI app of one worker process, from the settings the supervisor passed it."""
    configure_logging(settings.log_level, worker=True)
    return build_http_app(settings, transport="streamable-http", freeze_heap=True)
