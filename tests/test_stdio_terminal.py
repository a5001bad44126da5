"""`serve` on stdio in a real terminal (a pty): Ctrl-C stops it, and it says it is waiting.

The server runs as a child whose controlling terminal is a pty we hold the other side
of, so Ctrl-C is the byte 0x03 turned into SIGINT by the terminal's line discipline,
as in a shell. The SDK's own transport is run too, to pin down the cause: it ignores
Ctrl-C until Enter (if an SDK release fixes that, the test says so).
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from reset_mcp.server.stdio import WAITING
from tests.conftest import SECRET, reset_args

REPO = Path(__file__).resolve().parent.parent
SERVE = ["-m", "reset_mcp", "serve"]
# The same command where uvloop cannot be imported (as on Windows): plain asyncio.
SERVE_WITHOUT_UVLOOP = [
    "-c",
    "import sys; sys.modules['uvloop'] = None; from reset_mcp.cli.main import main; sys.exit(main(['serve']))",
]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX terminals")


class Terminal:
    """A child process on a pty: what it printed, keys typed to it, how it ended."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.output = b""
        pid, fd = pty.fork()
        if pid == 0:  # the child: a new session whose controlling terminal is the pty
            try:
                os.chdir(REPO)
                os.execve(sys.executable, [sys.executable, *args], env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.status: int | None = None

    def read_until(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output and time.monotonic() < deadline:
            self._pump(0.05)
        return text.encode() in self.output

    def _pump(self, wait: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], wait)
        if ready:
            try:
                self.output += os.read(self.fd, 65536)
            except OSError:  # EIO: the child closed its side
                time.sleep(wait)

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def exited_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                return True
            self._pump(0.05)
        return False

    def close(self) -> None:
        if self.status is None:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def child_env(data_dir: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "RESET_MCP_DATA_DIR": str(data_dir),
        "RESET_MCP_SECRET": SECRET,
        "TERM": "dumb",
    }


@pytest.fixture
def terminal(tmp_path: Path):  # type: ignore[no-untyped-def]
    opened: list[Terminal] = []

    def start(*args: str) -> Terminal:
        term = Terminal([*args], child_env(tmp_path / "data"))
        opened.append(term)
        return term

    yield start
    for term in opened:
        term.close()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_ctrl_c_stops_serve_in_a_terminal(terminal, loop: str) -> None:  # type: ignore[no-untyped-def]
    term = terminal(*(SERVE if loop == "uvloop" else SERVE_WITHOUT_UVLOOP))
    assert term.read_until(WAITING, 30), term.output.decode(errors="replace")
    term.type(b"\x03")
    started = time.monotonic()
    assert term.exited_within(10), "Ctrl-C did not stop the server: " + term.output.decode(errors="replace")[-800:]
    assert time.monotonic() - started < 5
    assert term.status == 130
    assert b"Traceback" not in term.output


def test_end_of_file_in_a_terminal_stops_serve(terminal) -> None:  # type: ignore[no-untyped-def]
    term = terminal(*SERVE)
    assert term.read_until(WAITING, 30)
    term.type(b"\x04")  # Ctrl-D at the start of a line: end of file
    assert term.exited_within(10) and term.status == 0, term.output.decode(errors="replace")[-800:]


def test_the_sdk_transport_alone_waits_for_enter_after_ctrl_c(terminal) -> None:  # type: ignore[no-untyped-def]
    term = terminal("-m", "tests.stdio_child")
    assert term.read_until("oversight autonomous", 30), term.output.decode(errors="replace")
    assert WAITING.encode() not in term.output
    term.type(b"\x03")
    if term.exited_within(3):
        pytest.fail("the SDK's stdio transport now stops on Ctrl-C: reset_mcp/server/stdio.py may go")
    term.type(b"\n")  # the worker thread's readline returns; only then does the cancel land
    assert term.exited_within(10)


def _params(tmp_path: Path) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=SERVE, cwd=str(REPO), env=child_env(tmp_path))


async def test_a_client_on_pipes_still_works(tmp_path: Path) -> None:
    async with Client(_params(tmp_path / "data"), mode="legacy") as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert "request_password_reset" in tools
        result = await client.call_tool("request_password_reset", reset_args())
        assert result.structured_content["status"] == "sent"
    assert len(list((tmp_path / "data" / "outbox").glob("*.eml"))) == 1


def test_many_messages_in_one_write_and_a_split_line_are_framed(tmp_path: Path) -> None:
    import json
    import subprocess

    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    lines = [init, {"jsonrpc": "2.0", "method": "notifications/initialized"}]
    lines += [{"jsonrpc": "2.0", "id": i, "method": "tools/list"} for i in range(2, 6)]
    payload = "".join(json.dumps(m) + "\n" for m in lines).encode()
    proc = subprocess.Popen(
        [sys.executable, *SERVE],
        cwd=REPO,
        env=child_env(tmp_path / "data"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    half = len(payload) // 2 + 7  # mid-line
    proc.stdin.write(payload[:half])
    proc.stdin.flush()
    time.sleep(0.3)
    proc.stdin.write(payload[half:])
    proc.stdin.flush()
    answers = [json.loads(proc.stdout.readline()) for _ in range(5)]
    proc.stdin.close()  # end of file: the server stops
    assert proc.wait(timeout=30) == 0
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert sorted(a["id"] for a in answers) == [1, 2, 3, 4, 5]
    assert all("tools" in a["result"] for a in answers if a["id"] != 1)
    assert WAITING not in stderr  # not a terminal: nobody to tell


def test_stdin_from_dev_null_ends_at_once(tmp_path: Path) -> None:
    import subprocess

    # /dev/null is a character device epoll refuses (EPERM): the thread fallback reads it.
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, *SERVE],
        cwd=REPO,
        env=child_env(tmp_path / "data"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b""
    assert time.monotonic() - started < 30


def _serve_failing(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *SERVE], cwd=REPO, env=env, stdin=subprocess.PIPE, capture_output=True, text=True, timeout=60
    )


def test_an_unwritable_data_dir_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = _serve_failing({**child_env(tmp_path), "RESET_MCP_DATA_DIR": str(blocker / "data")})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"reset-mcp: cannot write to the folder {blocker / 'data'} (Not a directory); "
        "set RESET_MCP_DATA_DIR to a folder you can write"
    ]


def test_an_error_inside_the_app_start_is_one_line_not_an_exception_group(tmp_path: Path) -> None:
    # Raised by build_app inside the MCP server's lifespan, inside the transport's task groups.
    missing = tmp_path / "no-such-policy.toml"
    done = _serve_failing({**child_env(tmp_path / "data"), "RESET_MCP_POLICY_FILE": str(missing)})
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reset-mcp: ") and str(missing) in lines[0], done.stderr
    assert "ExceptionGroup" not in done.stderr and "Traceback" not in done.stderr
