"""The in-memory twin of the email backends, for tests and benchmarks."""

from __future__ import annotations

import anyio

from reset_mcp.errors import PermanentDeliveryError, TransientDeliveryError
from reset_mcp.mail.base import DeliveryReceipt, OutgoingEmail


class MemoryBackend:
    """Keeps every accepted message in `sent`; can be told to fail the next sends."""

    name = "memory"

    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []
        self.fail_next: list[Exception] = []
        self.delivered = anyio.Event()

    async def send(self, email: OutgoingEmail) -> DeliveryReceipt:
        if self.fail_next:
            exc = self.fail_next.pop(0)
            if isinstance(exc, TransientDeliveryError | PermanentDeliveryError):
                raise exc
            raise TransientDeliveryError(str(exc)) from exc
        self.sent.append(email)
        self.delivered.set()
        return DeliveryReceipt(provider_message_id=email.message_id)

    async def probe(self) -> str:
        return "keeps emails in this process's memory: nothing is delivered"

    async def aclose(self) -> None:
        return None
