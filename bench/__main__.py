"""`python -m bench`: every benchmark row in one run, against one SMTP sink (and smtp-sink).

    python -m bench                 # rows 1-6, cpu and the 5,000-request load test (row 7)
    python -m bench --quick         # a short smoke run: small counts, no load, no soak
    python -m bench --only cpu,stdio,django,http
    python -m bench --soak 10       # add the soak (minutes; sampled every 10 s)
    python -m bench --out DIR       # default bench/results/

Rows: floor (1), inproc (2), cpu (8: server CPU per call, issue 24), stdio (3), http (4),
django (5), growth (6), load (7), soak (7). Rows stdio, http and django are measured again
against Postfix's smtp-sink when it is installed (results["smtp_sink"]). Writes
DIR/bench-<time>.json and DIR/latest.json (every figure, every latency), DIR/latency.png
(the distributions) and DIR/table.md, and prints the table.
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
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from bench import postfix_sink, report
from bench.beside import DjangoBeside
from bench.postfix_sink import PostfixSink
from bench.sink import SinkClient, SinkProcess

ROWS = ("floor", "inproc", "cpu", "stdio", "http", "django", "growth", "load", "soak")
BY_NUMBER = {
    "1": "floor", "2": "inproc", "3": "stdio", "4": "http", "5": "django", "6": "growth", "7": "load", "8": "cpu",
}  # fmt: skip
COMPARED = ("inproc", "stdio", "http")  # the rows a Django run is measured just before and after
ON_SMTP_SINK = ("stdio", "http", "django")  # the rows measured against smtp-sink too
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"floor": 200, "inproc": 200, "cpu": 200, "stdio": 100, "http": 100, "vc": 50, "django": 100}
    return {"floor": 2000, "inproc": 2000, "cpu": 1000, "stdio": 1000, "http": 2000, "vc": 500, "django": 1000}


def parse_rows(text: str | None, quick: bool, soak: float | None) -> list[str]:
    if text:
        wanted = []
        for item in text.split(","):
            item = item.strip().lower()
            name = BY_NUMBER.get(item, item)
            if name not in ROWS:
                raise SystemExit(f"unknown row {item!r}; choose from {', '.join(ROWS)} or 1-8")
            wanted.append(name)
        return [r for r in ROWS if r in wanted]
    rows = ["floor", "inproc", "cpu", "stdio", "http", "django", "growth"]
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
    from bench import cpu_row, django_row, floor, growth, http_rows, inproc, postfix_rows, stdio_row

    n = sizes(args.quick)
    rows = parse_rows(args.only, args.quick, args.soak)
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick, "rows_run": rows, "errors": {}}
    load_avg: dict[str, list[float]] = {}
    results["loadavg"] = load_avg
    with SinkProcess() as sink_proc, tempfile.TemporaryDirectory(prefix="bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        sink: SinkClient = sink_proc.client()
        port = sink_proc.port
        http_missing = http_rows.http_available()
        pf = smtp_sink(results, stack) if any(r in ON_SMTP_SINK for r in rows) else None
        plan: dict[str, Callable[[], Awaitable[Any]]] = {
            "floor": lambda: floor.row(port, n["floor"]),
            "inproc": lambda: inproc.row(port, sink, n["inproc"]),
            "cpu": lambda: cpu_row.row(n["cpu"], workdir),
            "stdio": lambda: stdio_row.row(port, sink, n["stdio"]),
            "http": lambda: http_rows.row4(port, sink, n["http"], workdir, n["vc"], args.http_workers),
            "django": lambda: django_row.row(port, sink, n["django"], workdir / "django"),
            "growth": lambda: growth.row(
                port, sink, [1_000, 10_000] if args.quick else [1_000, 100_000, 1_000_000], 30 if args.quick else 200
            ),
            "load": lambda: http_rows.load(port, sink, workdir, workers=args.http_workers),
            "soak": lambda: http_rows.soak(port, sink, workdir, args.soak or 10.0),
        }
        on_pf: dict[str, Callable[[PostfixSink], Awaitable[Any]]] = {
            "stdio": lambda pf: postfix_rows.stdio(pf, n["stdio"]),
            "http": lambda pf: postfix_rows.http_one_worker(pf, n["http"], workdir),
            "django": lambda pf: postfix_rows.django(pf, n["django"], workdir / "smtp-sink-django"),
        }
        beside = DjangoBeside(results, workdir, n["django"], port, sink, pf)
        for name in rows:
            missing = http_missing if name in ("http", "load", "soak") else None
            compared = name in COMPARED and "django" in rows and not missing
            if compared:
                await beside.run(name, "before")
            if missing:
                results[name] = {"skipped": missing}
                print(f"[bench] {name}: skipped ({missing})", file=sys.stderr)
                continue
            (workdir / "django").mkdir(exist_ok=True)
            await timed(results, name, plan[name])
            if compared:
                await beside.run(name, "after")
            if name in ON_SMTP_SINK and pf is not None:
                if compared:
                    await beside.run(name, "before", smtp_sink=True)
                await timed(results["smtp_sink"], name, partial(on_pf[name], pf), results["errors"], "smtp-sink ")
                if compared:
                    await beside.run(name, "after", smtp_sink=True)
            load_avg[name] = [round(x, 2) for x in os.getloadavg()]
        results["sink"] = await sink.stats()
    results["ratios"] = report.ratios(results)
    results["targets"] = report.targets(results)
    return results


def smtp_sink(results: dict[str, Any], stack: ExitStack) -> PostfixSink | None:
    """Postfix's smtp-sink started for this run, or None with the reason in results (not an error)."""
    reason = postfix_sink.missing()
    if reason is None:
        try:
            pf = stack.enter_context(PostfixSink())
            results["smtp_sink"] = {"sink": "postfix smtp-sink", "command": pf.command()}
            return pf
        except (OSError, RuntimeError) as exc:
            reason = f"smtp-sink did not start: {exc}"
    results["smtp_sink"] = {"skipped": reason}
    print(f"[bench] smtp-sink rows: skipped ({reason})", file=sys.stderr)
    return None


async def timed(
    into: dict[str, Any],
    name: str,
    fn: Callable[[], Awaitable[Any]],
    errors: dict[str, Any] | None = None,
    label: str = "",
) -> None:
    """Run one row into `into[name]`; one broken row must not lose the others."""
    print(f"[bench] {label}{name} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        into[name] = await fn()
    except Exception as exc:
        traceback.print_exc()
        (into["errors"] if errors is None else errors)[label + name] = f"{type(exc).__name__}: {exc}"
    print(f"[bench] {label}{name} done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)


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
        floor = f" (the SDK's floor alone: {t['sdk_floor']})" if "sdk_floor" in t else ""
        print(f"target {name}: {t['value']}{floor} -> {'met' if t['met'] else 'MISSED'}")
    for name, err in results["errors"].items():
        print(f"row {name} FAILED: {err}")
    for note in notes:
        print(f"note: {note}")
    print(f"\nfigures: {args.out / 'latest.json'}, chart: {args.out / 'latency.png'}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
