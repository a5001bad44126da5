"""API keys as use cases: create, list, revoke, and the check every HTTP request makes.

The key format and hashing are `keys.py`; this is where they meet the store.
"""

from __future__ import annotations

from collections.abc import Iterable

from reset_mcp.deps import Deps
from reset_mcp.keys import create_key, verify_key
from reset_mcp.store import Store
from reset_mcp.store.records import ApiKeyRecord


class KeyDesk:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def create(self, name: str, scopes: Iterable[str]) -> tuple[str, ApiKeyRecord]:
        """A new key: its plaintext (shown once, never stored) and its record."""
        async with self.deps.store.transaction() as tx:
            return await create_key(tx, name, scopes, self.deps.clock.now())

    async def list(self) -> list[ApiKeyRecord]:
        async with self.deps.store.reading() as tx:
            return await tx.list_api_keys()

    async def revoke(self, key_id: str) -> bool | None:
        """True when revoked now, False when it already was, None when there is no such key."""
        async with self.deps.store.transaction() as tx:
            if await tx.revoke_api_key(key_id, self.deps.clock.now()):
                return True
            return False if await tx.get_api_key(key_id) is not None else None

    async def authenticate(self, presented: str) -> ApiKeyRecord | None:
        """The active key `presented` names, or None. Reads without the write lock, so a key
        check never waits for a writer, in this process or another."""
        async with self.deps.store.reading() as tx:
            return await verify_key(tx, presented)

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        async with self.deps.store.reading() as tx:
            return await tx.get_api_key(key_id)


async def count_active_keys(store: Store) -> int:
    """For start-up checks made before an App exists (a public bind needs a key)."""
    async with store.reading() as tx:
        return await tx.count_active_api_keys()
