"""The audit chain's head, recorded outside the database (`RESET_MCP_AUDIT_ANCHOR_FILE`).

A keyed chain resists edits, but deleting its newest entries leaves a shorter chain
that verifies. So after every commit that appended audit entries the store writes the
new head, one line `<seq> <hash>`, to a file only ever appended to (opened O_APPEND,
mode 0600), and `verify_chain(..., anchors=read(path))` checks that every recorded
head is still in the chain and none lies beyond its end. Put the file where a
database writer cannot reach it (another host's disk, or ship it to a log collector).

A line is written after the commit, never before: an entry rolled back must not be
anchored (its seq is then reused by another entry). A line is not fsync'd: it reaches
the kernel at once, so a crash of the process loses nothing, and the SQLite store does
not fsync its commits either (`synchronous=NORMAL`). After a power failure both may lose
their last writes: the anchor can then lag the chain (harmless) or lead it, and
`verify` reports the missing tail, which is then the power failure's, not an attacker's.
A failed write is logged and counted, never raised: the transaction has committed.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reset_mcp.errors import ConfigError

log = logging.getLogger("reset_mcp.audit")

MODE = 0o600


class AuditAnchor:
    """Appends chain heads to the anchor file; one per store, closed with it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd
        self.failures = 0  # writes that failed (logged), for /metrics
        self.last: tuple[int, str] | None = None

    @classmethod
    def open(cls, path: Path | str) -> AuditAnchor:
        """Open (or create, 0600) for appending; a path that cannot be is a ConfigError."""
        path = Path(path).expanduser()
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # O_NONBLOCK: a FIFO put there must not hang the start (no effect on a file).
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, MODE)
        except OSError as exc:
            raise ConfigError(f"RESET_MCP_AUDIT_ANCHOR_FILE: cannot open {path}: {exc.strerror or exc}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(f"RESET_MCP_AUDIT_ANCHOR_FILE: {path} is not a regular file")
            if info.st_mode & 0o077:  # made by someone else, or before: no one else reads or writes it
                os.fchmod(fd, MODE)
        except OSError as exc:
            os.close(fd)
            raise ConfigError(f"RESET_MCP_AUDIT_ANCHOR_FILE: cannot make {path} private: {exc.strerror}") from None
        except ConfigError:
            os.close(fd)
            raise
        return cls(path, fd)

    def record(self, seq: int, digest: str) -> None:
        """Append one head. One `write` of a short line to an O_APPEND file: lines from
        several processes sharing the file never interleave."""
        if self._fd is None:
            return
        line = f"{seq} {digest}\n".encode()
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(f"short write ({written} of {len(line)} bytes)")
        except OSError as exc:
            self.failures += 1
            log.error("audit anchor %s: could not record entry %d: %s", self.path, seq, exc)
            return
        self.last = (seq, digest)

    def close(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)  # what is recorded survives a power failure from here on
        except OSError as exc:
            log.error("audit anchor %s: fsync at close failed: %s", self.path, exc)
        finally:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class AnchorLog:
    heads: Mapping[int, str]  # seq -> hash, for `verify_chain(anchors=...)`
    problem: str | None = None


def read(path: Path | str) -> AnchorLog:
    """The heads an anchor file recorded. A last line without its newline is a write a
    crash cut short and is skipped; any other odd line, or one seq recorded with two
    hashes (the database was truncated, or restored, and the seq reused), is a problem."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return AnchorLog({}, f"the anchor file {path} does not exist")
    except OSError as exc:
        return AnchorLog({}, f"cannot read the anchor file {path}: {exc.strerror}")
    lines = data.split(b"\n")
    heads: dict[int, str] = {}
    for number, raw in enumerate(lines[:-1], start=1):  # lines[-1] is b"" or a cut-short write
        seq_text, _, digest = raw.decode("ascii", "replace").partition(" ")
        if not seq_text.isdigit() or not digest or " " in digest:
            return AnchorLog(heads, f"the anchor file {path} is damaged at line {number}")
        seq = int(seq_text)
        if heads.setdefault(seq, digest) != digest:
            return AnchorLog(heads, f"the anchor file records two different hashes for entry {seq}")
    return AnchorLog(heads)
