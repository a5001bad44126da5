"""`serve` freezes its loaded heap out of the cyclic GC's reach; an embedded App does not."""

from __future__ import annotations

import gc
from collections.abc import Callable

from reset_mcp.app import app_with_jobs
from reset_mcp.config import Settings


async def test_serve_freezes_the_loaded_heap_and_an_embedded_app_does_not(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory()
    gc.unfreeze()
    try:
        async with app_with_jobs(settings) as app:
            assert app.store is not None
            assert gc.get_freeze_count() == 0  # not ours to freeze
        async with app_with_jobs(settings, freeze_heap=True):
            # The modules, schemas and templates loaded by now: tens of thousands of objects.
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()  # give the test process its heap back
