"""Django measured just before and just after each row it is compared with, on either sink.

The machine's speed drifts over a run (Django alone read 227 to 514 resets/s within one
session), and a ratio of figures taken seconds apart, on both sides, holds far better
than one of figures minutes apart or than one neighbour alone: each ratio's peer is the
mean of the two Django runs around its row, against the same sink as the row.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from bench import django_row, postfix_rows
from bench.postfix_sink import PostfixSink
from bench.sink import SinkClient

KEPT = ("per_s", "p50_ms", "p99_ms", "n", "all_delivered")
_runs = itertools.count(1)


def record(pairs: dict[str, Any], row: str, when: str, run: dict[str, Any]) -> None:
    """Keep one Django run beside `row` and update the row's peer (the mean of before and after)."""
    pair = pairs.setdefault(row, {})
    pair[when] = {k: run[k] for k in KEPT if k in run}
    rates = [pair[w]["per_s"] for w in ("before", "after") if w in pair]
    pair["per_s"] = round(sum(rates) / len(rates), 1)


class DjangoBeside:
    def __init__(
        self, results: dict[str, Any], workdir: Path, n: int, port: int, sink: SinkClient, pf: PostfixSink | None
    ) -> None:
        self.results, self.workdir, self.n = results, workdir, max(n // 2, 50)
        self.port, self.sink, self.pf = port, sink, pf
        results["django_beside"] = {}

    async def run(self, row: str, when: str, *, smtp_sink: bool = False) -> None:
        """One Django run beside `row`; a failure is recorded, the rows go on."""
        peer_dir = self.workdir / f"django-{next(_runs)}-{when}-{row}"  # its own users database
        label = f"django {when} {row}" + (" (smtp-sink)" if smtp_sink else "")
        try:
            if smtp_sink:
                assert self.pf is not None
                run = await postfix_rows.django(self.pf, self.n, peer_dir)
                pairs = self.results.setdefault("smtp_sink", {}).setdefault("django_beside", {})
            else:
                peer_dir.mkdir(parents=True)
                run = await django_row.row(self.port, self.sink, self.n, peer_dir)
                pairs = self.results["django_beside"]
        except Exception as exc:
            self.results["errors"][label] = f"{type(exc).__name__}: {exc}"
            return
        record(pairs, row, when, run)
