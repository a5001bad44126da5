"""The embedded default backend: each message becomes one `.eml` file in a folder.

A new user opens the file in any mail client and sees exactly what would have gone out.
Files are written to a temporary name and renamed, so a reader never sees half a
message; the name comes from the Message-ID, so a retry replaces rather than duplicates.
A reset email's link opens the account: the folder is 0700 and each file 0600, whatever
the umask (`private.py`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import anyio

from reset_mcp.errors import TransientDeliveryError
from reset_mcp.mail.base import DeliveryReceipt, OutgoingEmail
from reset_mcp.mail.mime import to_bytes
from reset_mcp.private import open_private, private_dir


class OutboxDirBackend:
    name = "outbox"

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        private_dir(self.folder)

    def path_for(self, email: OutgoingEmail) -> Path:
        stamp = email.date.strftime("%Y%m%dT%H%M%S")
        digest = hashlib.sha256(email.message_id.encode()).hexdigest()[:16]
        return self.folder / f"{stamp}-{email.kind}-{digest}.eml"

    def _write(self, email: OutgoingEmail) -> Path:
        target = self.path_for(email)
        tmp = target.with_suffix(".eml.tmp")
        data = to_bytes(email)
        with os.fdopen(open_private(tmp), "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
        return target

    async def send(self, email: OutgoingEmail) -> DeliveryReceipt:
        try:
            # Small files: a direct write is cheaper than a worker-thread hop.
            path = self._write(email)
        except OSError as exc:
            raise TransientDeliveryError(f"cannot write to the outbox folder: {exc.strerror}") from exc
        await anyio.lowlevel.checkpoint()
        return DeliveryReceipt(provider_message_id=path.name)

    async def probe(self) -> str:
        try:
            with tempfile.TemporaryFile(dir=self.folder, prefix=".write-check-"):
                pass
        except OSError as exc:
            raise TransientDeliveryError(f"cannot write to the outbox folder {self.folder}: {exc.strerror}") from exc
        return f"writes .eml files to {self.folder}"

    async def aclose(self) -> None:
        return None
