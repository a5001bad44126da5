"""The data folder: where the SQLite file, the outbox's .eml files and the signing key live.

Created private (`private.py`), proved writable before anything opens it, and holding the
key file a server generates when RESET_MCP_SECRET is not set.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from pathlib import Path

from reset_mcp.config import MIN_SECRET_BYTES, Settings
from reset_mcp.errors import ConfigError
from reset_mcp.private import private_dir, tighten

log = logging.getLogger("reset_mcp")
SECRET_FILE = "secret.key"  # noqa: S105 - a file name, not a secret


def load_or_create_secret(settings: Settings) -> str:
    """RESET_MCP_SECRET, else the key file in the data dir, else a new one written 0600."""
    if settings.secret is not None:
        return settings.secret.get_secret_value()
    path = Path(settings.data_dir) / SECRET_FILE
    if path.exists():
        tighten(path)
        secret = path.read_text(encoding="utf-8").strip()
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"{path}: the stored key is shorter than {MIN_SECRET_BYTES} bytes")
        return secret
    private_dir(path.parent)
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race; use its key
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret + "\n")
    log.warning("RESET_MCP_SECRET is not set: generated a signing key in %s (mode 0600)", path)
    return secret


def ensure_data_dir(settings: Settings) -> None:
    """Create the data folder (and the outbox folder the embedded default writes to) and prove
    each writable, or raise one ConfigError line naming the folder and its variable.

    Creating a file is the test that cannot be wrong: a permission check misses what only
    the write meets (root squashed on NFS, SELinux, an exhausted inode table)."""
    folders = [(Path(settings.data_dir), "RESET_MCP_DATA_DIR")]
    if settings.email_backend == "outbox":
        folders.append(
            (settings.effective_outbox_dir, "RESET_MCP_OUTBOX_DIR" if settings.outbox_dir else "RESET_MCP_DATA_DIR")
        )
    for folder, variable in folders:
        try:
            private_dir(folder)  # 0700 whatever the umask: key, database, links (private.py)
            with tempfile.TemporaryFile(dir=folder, prefix=".write-check-"):
                pass
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigError(
                f"cannot write to the folder {folder} ({reason}); set {variable} to a folder you can write"
            ) from None
