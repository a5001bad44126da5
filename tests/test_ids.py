"""Ids: time-ordered (index-friendly) and still unguessable."""

from __future__ import annotations

import time

from reset_mcp.ids import new_id


def test_ids_are_time_ordered_and_keep_128_random_bits() -> None:
    ids = []
    for _ in range(3):
        ids.append(new_id("req"))
        time.sleep(0.002)
    assert ids == sorted(ids)  # creation order is index order
    stamp = int(ids[0][4:15], 16)
    assert abs(stamp - time.time() * 1000) < 60_000
    tails = {new_id("req")[15:] for _ in range(1000)}
    assert len(tails) == 1000 and all(len(t) == 22 for t in tails)  # token_urlsafe(16): 128 bits
