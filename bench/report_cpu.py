"""Issue 24's figures in the report: the cpu row, the smtp-sink rows, their ratios and targets.

Every ratio is ours / Django against the same sink, Django taken as the mean of its runs
just before and just after our row (`bench.beside`), or its own row when there are none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TARGETS = {
    "cpu_stdio_ms": 1.2,
    "cpu_http_ms": 1.5,
    "stdio_vs_django": 1.0,
    "http_one_worker_c32_vs_django": 2.0,
}
SINKS = (("own sink", ""), ("smtp-sink", "smtp_sink_"))


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def one_worker_c32(http: Any) -> Any:
    """HTTP at concurrency 32 on one worker process: its own series when row 4 ran on
    several workers, else row 4's concurrency 32 (which then was one worker)."""
    if not isinstance(http, dict):
        return None
    if "one_worker_concurrency_32" in http:
        return http["one_worker_concurrency_32"]
    return http.get("concurrency_32") if http.get("workers", 1) == 1 else None


def series(results: dict[str, Any]) -> dict[str, tuple[Any, Any, Any]]:
    """ratio key -> (our run, the Django runs beside it, Django's own row), on both sinks."""
    pf = results.get("smtp_sink") or {}
    own_beside, pf_beside = results.get("django_beside") or {}, pf.get("django_beside") or {}
    return {
        "stdio_sequential": (results.get("stdio"), own_beside.get("stdio"), results.get("django")),
        "http_one_worker_concurrency_32": (
            one_worker_c32(results.get("http")),
            own_beside.get("http"),
            results.get("django"),
        ),
        "smtp_sink_stdio_sequential": (pf.get("stdio"), pf_beside.get("stdio"), pf.get("django")),
        "smtp_sink_http_one_worker_concurrency_32": (pf.get("http"), pf_beside.get("http"), pf.get("django")),
    }


def ratios(results: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, (ours, beside, row) in series(results).items():
        rate = _get(ours, "per_s")
        peer = _get(beside, "per_s") or _get(row, "per_s")
        if rate and peer:
            out[f"{name}_vs_django"] = round(rate / peer, 2)
    return out


def targets(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for transport, label in (("stdio", "stdio"), ("http", "HTTP")):
        ms = _get(results, "cpu", transport, "server_cpu_ms_per_call")
        floor = _get(results, "cpu", f"{transport}_sdk_floor", "server_cpu_ms_per_call")
        limit = TARGETS[f"cpu_{transport}_ms"]
        if ms is not None:
            found: dict[str, Any] = {"value": ms, "met": ms <= limit}
            if floor is not None:  # what the target leaves for reset-mcp's own work, the SDK's share paid
                found["sdk_floor"] = floor
            out[f"server CPU per call, {label} <= {limit} ms"] = found
    r = results.get("ratios") or {}
    found = series(results)
    for sink, prefix in SINKS:
        for key, text, limit in (
            ("stdio_sequential", "stdio sequential", TARGETS["stdio_vs_django"]),
            ("http_one_worker_concurrency_32", "HTTP c32 one worker", TARGETS["http_one_worker_c32_vs_django"]),
        ):
            value = r.get(f"{prefix}{key}_vs_django")
            if value is None:
                continue
            delivered = bool(_get(found[prefix + key][0], "all_delivered"))
            name = f"{text} >= {limit}x Django ({sink}), all delivered"
            out[name] = {"value": value, "met": value >= limit and delivered}
    return out


def rows(results: dict[str, Any], fmt: Callable[[Any], str]) -> list[tuple[str, ...]]:
    """Table lines: (row, what, per s, p50, p95, p99, notes)."""
    out: list[tuple[str, ...]] = []
    cpu = results.get("cpu")
    for transport in ("stdio", "http"):
        c, floor = _get(cpu, transport), _get(cpu, f"{transport}_sdk_floor")
        if isinstance(c, dict):
            note = (f"server {fmt(c['server_cpu_ms_per_call'])} ms CPU a call ({c['server_processes']} process(es)), "
                    f"client {fmt(c['client_cpu_ms_per_call'])} ms; n={c['n']}, errors={c['errors']}")  # fmt: skip
            if isinstance(floor, dict):
                own = c["server_cpu_ms_per_call"] - floor["server_cpu_ms_per_call"]
                note += f"; reset-mcp's own {fmt(round(own, 3))} ms over the SDK floor"
            out.append(("8 cpu", f"{c['transport']}, sequential (calls/s)", fmt(c.get("calls_per_s")),
                        fmt(c.get("p50_ms")), "-", fmt(c.get("p99_ms")), note))  # fmt: skip
        if isinstance(floor, dict):
            note = (f"server {fmt(floor['server_cpu_ms_per_call'])} ms CPU a call: the SDK alone (bench.sdk_floor, "
                    f"a constant answer), client {fmt(floor['client_cpu_ms_per_call'])} ms; n={floor['n']}, "
                    f"errors={floor['errors']}")  # fmt: skip
            out.append(("8 cpu", f"{floor['transport']}, SDK floor (calls/s)", fmt(floor.get("calls_per_s")),
                        fmt(floor.get("p50_ms")), "-", fmt(floor.get("p99_ms")), note))  # fmt: skip
    pf = results.get("smtp_sink")
    if isinstance(pf, dict) and "skipped" in pf:
        out.append(("smtp-sink", "stdio, HTTP, Django", "-", "-", "-", "-", f"skipped: {pf['skipped']}"))
    elif isinstance(pf, dict):
        names = {"stdio": "stdio, sequential", "http": "HTTP c=32, one worker", "django": "Django save()"}
        for key, what in names.items():
            d = pf.get(key)
            if isinstance(d, dict):
                note = f"n={d['n']}, all delivered once: {d.get('all_delivered')}, latency: client's"
                out.append(("smtp-sink", what, fmt(d.get("per_s")), fmt(d.get("p50_ms")), fmt(d.get("p95_ms")),
                            fmt(d.get("p99_ms")), note))  # fmt: skip
        for name, pair in (pf.get("django_beside") or {}).items():
            for when in ("before", "after"):
                b = pair.get(when)
                if isinstance(b, dict):
                    note = f"n={b.get('n')}" + (f"; mean {fmt(pair.get('per_s'))}/s" if when == "after" else "")
                    out.append(("smtp-sink", f"Django just {when} {name}", fmt(b.get("per_s")), fmt(b.get("p50_ms")),
                                "-", fmt(b.get("p99_ms")), note))  # fmt: skip
    return out
