"""The printed table, the ratios and targets, and the PNG of latency distributions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import report_cpu

TARGETS = {
    "inproc_vs_django": 3.0,
    "http_c32_vs_django": 1.5,
    "stdio_p99_ms": 10.0,
}


def _get(results: dict[str, Any], *path: str) -> Any:
    cur: Any = results
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


ROW_NUMBER = {"inproc": "2", "stdio": "3", "http": "4"}


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Ours / Django, each against the mean of the Django runs measured just before and
    just after our row (see `django_beside`), or the Django row when there are none."""
    django = _get(results, "django", "per_s")
    beside = results.get("django_beside") or {}
    out: dict[str, Any] = {}
    for name, path in (
        ("inproc_sequential", ("inproc", "sequential", "per_s")),
        ("inproc_concurrency_8", ("inproc", "concurrency_8", "per_s")),
        ("inproc_concurrency_8_uvloop", ("inproc", "concurrency_8_uvloop", "per_s")),
        ("http_concurrency_1", ("http", "concurrency_1", "per_s")),
        ("http_concurrency_8", ("http", "concurrency_8", "per_s")),
        ("http_concurrency_32", ("http", "concurrency_32", "per_s")),
        ("http_one_worker_concurrency_32", ("http", "one_worker_concurrency_32", "per_s")),
    ):
        ours = _get(results, *path)
        peer = (beside.get(path[0]) or {}).get("per_s") or django
        if ours and peer:
            out[f"{name}_vs_django"] = round(ours / peer, 2)
    return out | report_cpu.ratios(results)  # issue 24's: stdio, HTTP c32 on one worker, both sinks


def targets(results: dict[str, Any]) -> dict[str, Any]:
    r = results.get("ratios", {})
    out: dict[str, Any] = {}
    best_inproc = max(
        r.get("inproc_sequential_vs_django", 0),
        r.get("inproc_concurrency_8_vs_django", 0),
        r.get("inproc_concurrency_8_uvloop_vs_django", 0),
    )
    if best_inproc:
        out["inproc >= 3x Django"] = {"value": best_inproc, "met": best_inproc >= TARGETS["inproc_vs_django"]}
    if "http_concurrency_32_vs_django" in r:
        v = r["http_concurrency_32_vs_django"]
        all_delivered = bool(_get(results, "http", "concurrency_32", "all_delivered"))
        out["HTTP c32 >= 1.5x Django, all delivered"] = {
            "value": v,
            "met": v >= TARGETS["http_c32_vs_django"] and all_delivered,
        }
    p99 = _get(results, "stdio", "p99_ms")
    if p99 is not None:
        out["stdio p99 < 10 ms"] = {"value": p99, "met": p99 < TARGETS["stdio_p99_ms"]}
    load = results.get("load")
    if isinstance(load, dict) and "exactly_once" in load:
        out["load 5000 @ c50: 0 errors, exactly once"] = {"value": load.get("errors"), "met": load["exactly_once"]}
    return out | report_cpu.targets(results)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}" if v < 100 else f"{v:,.0f}"
    return str(v)


def rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    """(row, what, resets/s, p50, p95, p99, notes) lines for the table."""
    out: list[tuple[str, ...]] = []
    fl = results.get("floor")
    if isinstance(fl, dict):
        out.append(("1 floor", "JWT sign / verify (us)", "-", _fmt(fl.get("jwt_sign_us")), "-", "-",
                    f"verify {_fmt(fl.get('jwt_verify_us'))} us"))  # fmt: skip
        out.append(("1 floor", "SQLite commit, WAL (us)", "-", _fmt(fl.get("sqlite_commit_aiosqlite_us")), "-", "-",
                    f"aiosqlite; inline sqlite3 {_fmt(fl.get('sqlite_commit_inline_us'))} us"))  # fmt: skip
        out.append(("1 floor", "SMTP send, reused conn (us)", "-", _fmt(fl.get("smtp_send_reused_us")), "-", "-",
                    f"new connection {_fmt(fl.get('smtp_send_new_connection_us'))} us"))  # fmt: skip

    def lat(row: str, what: str, d: Any, note: str = "") -> None:
        if isinstance(d, dict) and "n" in d:
            errs = d.get("errors")
            extra = f"n={d['n']}" + (f", errors={errs}" if errs else "") + (f", {note}" if note else "")
            out.append((row, what, _fmt(d.get("per_s")), _fmt(d.get("p50_ms")), _fmt(d.get("p95_ms")),
                        _fmt(d.get("p99_ms")), extra))  # fmt: skip

    lat("2 in-process", "sequential", _get(results, "inproc", "sequential"))
    lat("2 in-process", "concurrency 8", _get(results, "inproc", "concurrency_8"))
    lat("2 in-process", "concurrency 8, uvloop", _get(results, "inproc", "concurrency_8_uvloop"))
    lat("3 stdio", "SDK client, sequential", results.get("stdio"))
    workers = _get(results, "http", "workers") or 1
    procs = f", {workers} workers" if workers > 1 else ""
    for c in (1, 8, 32):
        lat("4 HTTP", f"concurrency {c}{procs}", _get(results, "http", f"concurrency_{c}"))
    lat("4 HTTP", "concurrency 32, one worker", _get(results, "http", "one_worker_concurrency_32"))
    vc = _get(results, "http", "verify_consume")
    if isinstance(vc, dict):
        lat("4 HTTP", "verify + consume (pairs)", vc, f"c={vc.get('concurrency')}")
    dj = results.get("django")
    if isinstance(dj, dict):
        lat("5 Django 5.2", "PasswordResetForm.save()", dj, f"Django {dj.get('django_version')}")
    for name, pair in (results.get("django_beside") or {}).items():
        for when in ("before", "after"):
            b = pair.get(when)
            if not isinstance(b, dict):
                continue
            what = f"just {when} row {ROW_NUMBER.get(name, name)}"
            note = f"n={b.get('n')}"
            if when == "after":
                note += f"; the mean, {_fmt(pair.get('per_s'))}/s, is its row's peer"
            p50, p99 = _fmt(b.get("p50_ms")), _fmt(b.get("p99_ms"))
            out.append(("5 Django 5.2", what, _fmt(b.get("per_s")), p50, "-", p99, note))
    for g in (results.get("growth") or {}).values():
        if isinstance(g, dict):
            out.append(("6 growth", f"{g['stored']:,} stored: request", "-", _fmt(g.get("request_p50_ms")), "-",
                        _fmt(g.get("request_p99_ms")), f"{g.get('statements_per_request')} statements, "
                        f"full scans: {len(g.get('full_scans', []))}"))  # fmt: skip
            before, after = g["rows_before_purge"], g["rows_after_purge"]
            purge = (f"purge {g.get('purge_s')} s (a writer waited {g.get('purge_writer_max_wait_ms')} ms at most): "
                     f"tokens {before['tokens']:,} -> {after['tokens']:,}, "
                     f"events {before['events']:,} -> {after['events']:,}, "
                     f"sends {before['sends']:,} -> {after['sends']:,}")  # fmt: skip
            out.append(("6 growth", f"{g['stored']:,} stored: consume", "-", _fmt(g.get("consume_p50_ms")), "-",
                        _fmt(g.get("consume_p99_ms")), purge))  # fmt: skip
    ld = results.get("load")
    if isinstance(ld, dict) and "n" in ld:
        procs = f", {ld['workers']} workers" if ld.get("workers", 1) > 1 else ""
        lat("7 load", f"HTTP, 5,000 @ c50{procs}", ld, f"exactly once: {ld.get('exactly_once')}")
    sk = results.get("soak")
    if isinstance(sk, dict) and "minutes" in sk:
        rss = (f"RSS {sk.get('rss_first_mb')} -> {sk.get('rss_last_mb')} MB (max {sk.get('rss_max_mb')}), "
               f"2nd-half slope {sk.get('rss_second_half_slope_mb_per_min')} MB/min, "
               f"errors {sk.get('errors')}")  # fmt: skip
        out.append(("7 soak", f"HTTP {sk['minutes']} min @ c{sk['concurrency']}", _fmt(sk.get("per_s")), "-", "-",
                    "-", rss))  # fmt: skip
    return out + report_cpu.rows(results, _fmt)


def table(results: dict[str, Any]) -> str:
    header = ("row", "what", "resets/s", "p50 ms", "p95 ms", "p99 ms", "notes")
    lines = [header, *rows(results)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = []
    for i, line in enumerate(lines):
        cells = [cell.ljust(widths[j]) if j < 2 else cell.rjust(widths[j]) for j, cell in enumerate(line[:-1])]
        text.append("  ".join(cells) + "  " + line[-1])
        if i == 0:
            text.append("-" * len(text[0]))
    return "\n".join(text)


def markdown(results: dict[str, Any]) -> str:
    header = ("row", "what", "resets/s", "p50 ms", "p95 ms", "p99 ms", "notes")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(results)]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> str | None:
    """An ECDF of latency until the sink accepted the message, one line per series."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no chart"
    series = {
        "in-process, sequential": _get(results, "inproc", "sequential", "latencies_ms"),
        "in-process, c=8": _get(results, "inproc", "concurrency_8", "latencies_ms"),
        "in-process, c=8, uvloop": _get(results, "inproc", "concurrency_8_uvloop", "latencies_ms"),
        "stdio (SDK client)": _get(results, "stdio", "latencies_ms"),
        "HTTP c=1": _get(results, "http", "concurrency_1", "latencies_ms"),
        "HTTP c=8": _get(results, "http", "concurrency_8", "latencies_ms"),
        "HTTP c=32": _get(results, "http", "concurrency_32", "latencies_ms"),
        "HTTP c=32, one worker": _get(results, "http", "one_worker_concurrency_32", "latencies_ms"),
        "Django save(), sequential": _get(results, "django", "latencies_ms"),
    }
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    drawn = 0
    for label, values in series.items():
        if not values:
            continue
        xs = sorted(values)
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        ax.step(xs, ys, where="post", label=f"{label} (p50 {xs[len(xs) // 2]:.1f} ms)")
        drawn += 1
    if not drawn:
        plt.close(fig)
        return "no latency series to draw"
    ax.set_xscale("log")
    ax.set_xlabel("latency until the SMTP sink accepted the message (ms, log scale)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("reset-mcp: password reset latency distribution (same run, same sink)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return None
