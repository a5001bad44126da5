"""What the server accepted against what the SMTP sink received, by Message-ID.

    tally = Tally.of(expected_message_ids, sink.records())
    tally.delivered, tally.duplicated, tally.lost, tally.maybe_duplicated

`expected` is the Message-IDs of the outbox rows the server committed (one per accepted
email). A copy counts as delivered when the sink answered it 250 ("accepted"); one whose
data arrived but got no answer (the link dropped, the sink hung) may still be at the
receiver, so it counts towards `maybe_duplicated` but never as delivered; one the sink
refused (451, 550) is not kept by it. `failed`: Message-IDs whose rows ended `failed`
visibly (a 550): not delivered, and not lost either.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Tally:
    accepted: int  # emails the server committed to send
    delivered: int  # of those, how many the sink acknowledged (250) at least once
    duplicated: int  # of those, how many it acknowledged more than once
    lost: int  # accepted, never acknowledged, and not visibly failed
    maybe_duplicated: int  # whose data arrived more than once, acknowledged or not
    unexpected: int  # acknowledged copies of Message-IDs the server never committed
    copies: Mapping[str, int] = field(default_factory=dict)  # Message-ID -> acknowledged copies

    @classmethod
    def of(cls, expected: Iterable[str], records: Iterable[Mapping[str, Any]], failed: Iterable[str] = ()) -> Tally:
        wanted, gave_up = set(expected), set(failed)
        records = list(records)
        acked = Counter(r["message_id"] for r in records if r["outcome"] == "accepted")
        arrived = Counter(r["message_id"] for r in records if r["outcome"] != "refused")
        return cls(
            accepted=len(wanted),
            delivered=sum(1 for m in wanted if acked[m] >= 1),
            duplicated=sum(1 for m in wanted if acked[m] > 1),
            lost=sum(1 for m in wanted if acked[m] == 0 and m not in gave_up),
            maybe_duplicated=sum(1 for m in wanted if arrived[m] > 1),
            unexpected=sum(n for m, n in acked.items() if m not in wanted),
            copies={m: acked[m] for m in wanted},
        )

    def line(self) -> str:
        """One line for the test log and the notes."""
        return (
            f"accepted={self.accepted} delivered={self.delivered} duplicated={self.duplicated} "
            f"lost={self.lost} maybe_duplicated={self.maybe_duplicated} unexpected={self.unexpected}"
        )


def sqlite_outbox(db: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The outbox rows of a SQLite data file, read beside a running server."""
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        conn.row_factory = sqlite3.Row
        where, args = ("WHERE kind = ?", (kind,)) if kind else ("", ())
        rows = conn.execute(
            f"SELECT id, send_id, kind, message_id, status, attempts, recipient FROM outbox {where}", args
        ).fetchall()
    return [dict(r) for r in rows]
