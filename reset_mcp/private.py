"""Where live links and secrets are kept on disk: folders 0700, files 0600, whatever the umask.

The data folder holds the signing key, the SQLite database (token hashes, recipients,
contact history) and, with the outbox backend, `.eml` files whose links open accounts.
A umask of 022 would make all of them readable by every local user; so each is created
with the mode it needs (a umask only ever removes bits), and one left by an older
version with group or other bits has them taken away at start.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)
DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """`path` as a folder only its owner can enter (parents made as `mkdir -p` does)."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    tighten(path)
    return path


def create_private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 if it does not exist; tighten it if it does."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        tighten(path)


def private_database(path: Path) -> None:
    """A SQLite database file created 0600 before SQLite opens it: SQLite gives its WAL and
    shared-memory files the database file's mode, so they are 0600 too, whatever the umask.
    A file an older version left readable by others is tightened, with its WAL and SHM."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)  # a folder of its own: 0700 if new
    create_private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        tighten(path.with_name(path.name + suffix))


def open_private(path: Path) -> int:
    """A new file at `path`, mode 0600, open for writing (a stale one is replaced)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags, FILE_MODE)
    except FileExistsError:  # left by a crash mid-write: its mode is not ours to trust
        path.unlink()
        return os.open(path, flags, FILE_MODE)


def tighten(path: Path) -> None:
    """Take group and other permissions off `path`, if it exists and has any."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        if mode & stat.S_ISVTX:  # a shared folder such as /tmp: never ours to close
            log.warning("%s is a shared folder (sticky bit); keep reset-mcp's files in a folder of their own", path)
            return
        try:
            os.chmod(path, mode & ~0o077)
        except OSError as exc:  # not ours to change (another owner): say so, do not stop
            log.warning("%s is readable by others (mode %o) and could not be changed: %s", path, mode, exc.strerror)
            return
        log.info("%s: mode %o -> %o (readable by its owner only)", path, mode, mode & ~0o077)
