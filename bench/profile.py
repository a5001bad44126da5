"""Where the time goes: `python -m bench.profile [inproc|http] [-n N] [--out DIR]`.

inproc  runs N resets in process under pyinstrument (cProfile if pyinstrument is not
        installed) against the bench's SMTP sink, and prints the call tree.
http    starts `reset-mcp serve --transport streamable-http` under pyinstrument, drives
        N resets at concurrency 8 with the bench's HTTP client, stops the server and
        prints the server's call tree.
Both also write the profile to DIR (default bench/results/).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import anyio

from bench.common import Identities, bench_settings
from bench.sink import SinkProcess

ROOT = Path(__file__).resolve().parent.parent


def _has_pyinstrument() -> bool:
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        return False
    return True


async def profile_inproc(n: int, out: Path) -> str:
    from reset_mcp.app import build_app

    with SinkProcess() as sink, tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        async with build_app(bench_settings(Path(tmp), sink.port)) as app:
            ids = Identities("profile")
            for _ in range(30):
                await app.service.request_password_reset(ids.reset_input())
            cpu, wall = time.process_time(), time.perf_counter()
            if _has_pyinstrument():
                from pyinstrument import Profiler

                profiler = Profiler(async_mode="enabled")
                profiler.start()
                for _ in range(n):
                    await app.service.request_password_reset(ids.reset_input())
                profiler.stop()
                (out / "profile-inproc.html").write_text(profiler.output_html())
                text = profiler.output_text(unicode=False, color=False)
            else:
                import cProfile
                import io
                import pstats

                prof = cProfile.Profile()
                prof.enable()
                for _ in range(n):
                    await app.service.request_password_reset(ids.reset_input())
                prof.disable()
                buf = io.StringIO()
                pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(40)
                text = buf.getvalue()
            per = f"{n} resets: {(time.perf_counter() - wall) / n * 1000:.2f} ms wall, "
            per += f"{(time.process_time() - cpu) / n * 1000:.2f} ms CPU each (profiler overhead included)\n"
    (out / "profile-inproc.txt").write_text(per + text)
    return per + text


async def profile_http(n: int, out: Path) -> str:
    from bench import http_rows

    if not _has_pyinstrument():
        return "the http profile needs pyinstrument (pip install -e '.[bench]')"
    report = out / "profile-http.txt"
    with SinkProcess() as sink, tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        cli = [sys.executable, "-m", "pyinstrument", "--renderer", "text", "-o", str(report), "-m", "reset_mcp"]
        server = http_rows.HttpServer(Path(tmp) / "data", sink.port, out / "profile-http-server.log", launcher=cli)
        server.start()
        try:
            await http_rows.drive(server, "profile", n, 8)
        finally:
            server.stop()
    return report.read_text() if report.exists() else "no profile was written"


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile")
    p.add_argument("target", choices=["inproc", "http"], nargs="?", default="inproc")
    p.add_argument("-n", type=int, default=500)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    fn = profile_inproc if args.target == "inproc" else profile_http
    print(anyio.run(fn, args.n, args.out))


if __name__ == "__main__":
    main()
