"""`python -m bench`: every benchmark row in one run, against one SMTP sink.

    python -m bench                 # rows 1-6 and the 5,000-request load test (row 7)
    python -m bench --quick         # a short smoke run: small counts, no load, no soak
    python -m bench --only floor,inproc,django
    python -m bench --soak 10       # add the soak (minutes; sampled every 10 s)
    python -m bench --out DIR       # default bench/results/

Rows: floor (1), inproc (2), stdio (3), http (4), django (5), growth (6), load (7),
soak (7). Writes DIR/bench-<time>.json and DIR/latest.json (every figure, every latency),
DIR/latency.png (the distributions) and DIR/table.md, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from bench import report
from bench.sink import SinkClient, SinkProcess

ROWS = ("floor", "inproc", "stdio", "http", "django", "growth", "load", "soak")
BY_NUMBER = {"1": "floor", "2": "inproc", "3": "stdio", "4": "http", "5": "django", "6": "growth", "7": "load"}
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"floor": 200, "inproc": 200, "stdio": 100, "http": 100, "vc": 50, "django": 100}
    return {"floor": 2000, "inproc": 2000, "stdio": 1000, "http": 2000, "vc": 500, "django": 1000}


def parse_rows(text: str | None, quick: bool, soak: float | None) -> list[str]:
    if text:
        wanted = []
        for item in text.split(","):
            item = item.strip().lower()
            name = BY_NUMBER.get(item, item)
            if name not in ROWS:
                raise SystemExit(f"unknown row {item!r}; choose from {', '.join(ROWS)} or 1-7")
            wanted.append(name)
        return [r for r in ROWS if r in wanted]
    rows = ["floor", "inproc", "stdio", "http", "django", "growth"]
    if not quick:
        rows.append("load")
    if soak:
        rows.append("soak")
    return rows


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
        info["git_commit"] = commit.stdout.strip() or None
    except OSError:
        info["git_commit"] = None
    return info


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench import django_row, floor, growth, http_rows, inproc, stdio_row

    n = sizes(args.quick)
    rows = parse_rows(args.only, args.quick, args.soak)
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick, "rows_run": rows, "errors": {}}
    load_avg: dict[str, list[float]] = {}
    results["loadavg"] = load_avg
    with SinkProcess() as sink_proc, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        sink: SinkClient = sink_proc.client()
        port = sink_proc.port
        http_missing = http_rows.http_available()
        plan: dict[str, Callable[[], Awaitable[Any]]] = {
            "floor": lambda: floor.row(port, n["floor"]),
            "inproc": lambda: inproc.row(port, sink, n["inproc"]),
            "stdio": lambda: stdio_row.row(port, sink, n["stdio"]),
            "http": lambda: http_rows.row4(port, sink, n["http"], workdir, n["vc"], args.http_workers),
            "django": lambda: django_row.row(port, sink, n["django"], workdir / "django"),
            "growth": lambda: growth.row(
                port, sink, [1_000, 10_000] if args.quick else [1_000, 100_000, 1_000_000], 30 if args.quick else 200
            ),
            "load": lambda: http_rows.load(port, sink, workdir, workers=args.http_workers),
            "soak": lambda: http_rows.soak(port, sink, workdir, args.soak or 10.0),
        }
        # Django is measured again right before and right after each row it is compared
        # with, and each ratio uses the mean of those two: the machine's speed drifts over
        # a run (Django alone read 227 to 514 resets/s within one session), and a
        # ratio of figures taken seconds apart, on both sides, holds far better than one
        # of figures minutes apart or than one neighbour alone.
        pairs: dict[str, Any] = {}
        results["django_beside"] = pairs

        async def django_beside(name: str, when: str) -> None:
            peer_dir = workdir / f"django-{when}-{name}"  # its own users database
            peer_dir.mkdir(exist_ok=True)
            try:
                run = await django_row.row(port, sink, max(n["django"] // 2, 50), peer_dir)
            except Exception as exc:
                results["errors"][f"django {when} {name}"] = f"{type(exc).__name__}: {exc}"
                return
            pair = pairs.setdefault(name, {})
            pair[when] = {k: run[k] for k in ("per_s", "p50_ms", "p99_ms", "n")}
            rates = [pair[w]["per_s"] for w in ("before", "after") if w in pair]
            pair["per_s"] = round(sum(rates) / len(rates), 1)

        for name in rows:
            compared = name in ("inproc", "http") and "django" in rows and not (name == "http" and http_missing)
            if compared:
                await django_beside(name, "before")
            if name in ("http", "load", "soak") and http_missing:
                results[name] = {"skipped": http_missing}
                print(f"[bench] {name}: skipped ({http_missing})", file=sys.stderr)
                continue
            (workdir / "django").mkdir(exist_ok=True)
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            try:
                results[name] = await plan[name]()
            except Exception as exc:  # one broken row must not lose the others
                traceback.print_exc()
                results["errors"][name] = f"{type(exc).__name__}: {exc}"
            load_avg[name] = [round(x, 2) for x in os.getloadavg()]
            print(f"[bench] {name} done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
            if compared:
                await django_beside(name, "after")
        results["sink"] = await sink.stats()
    results["ratios"] = report.ratios(results)
    results["targets"] = report.targets(results)
    return results


def write(results: dict[str, Any], out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    notes = []
    text = json.dumps(results, indent=1, default=str)
    (out / f"bench-{stamp}.json").write_text(text)
    (out / "latest.json").write_text(text)
    (out / "table.md").write_text(report.markdown(results) + "\n")
    problem = report.chart(results, out / "latency.png")
    if problem:
        notes.append(problem)
    return notes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="a short smoke run (small counts, no load or soak)")
    p.add_argument(
        "--http-workers",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="worker processes of the HTTP server in rows 4 and 7 (default: one per core; the soak uses one)",
    )
    p.add_argument("--only", metavar="ROWS", help=f"comma-separated rows: {', '.join(ROWS)} (or 1-7)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the figures (default bench/results/)")
    p.add_argument(
        "--soak", type=float, nargs="?", const=10.0, default=None, metavar="MINUTES", help="add the soak (default 10)"
    )
    args = p.parse_args(argv)
    results = anyio.run(run, args)
    notes = write(results, args.out)
    print()
    print(report.table(results))
    print()
    for name, value in results["ratios"].items():
        print(f"ratio {name}: {value}x")
    for name, t in results["targets"].items():
        print(f"target {name}: {t['value']} -> {'met' if t['met'] else 'MISSED'}")
    for name, err in results["errors"].items():
        print(f"row {name} FAILED: {err}")
    for note in notes:
        print(f"note: {note}")
    print(f"\nfigures: {args.out / 'latest.json'}, chart: {args.out / 'latency.png'}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
