"""Row 5, the peer: Django 5.2's PasswordResetForm.save() against the same sink, same run.

Django lives in its own venv (`bench/.venv-django`, created on first use with
`pip install 'django>=5.2,<5.3'`), never in reset-mcp's dependencies. Its templates are
reset-mcp's own rendered reset email (text and HTML), with the link replaced by Django's
`{{ protocol }}://{{ domain }}/reset/{{ uid }}/{{ token }}/`, so both send the same bytes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio

from bench.common import bench_settings, summary
from bench.sink import SinkClient

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-django"
DJANGO_SPEC = "django>=5.2,<5.3"
LINK = "{% endverbatim %}{{ protocol }}://{{ domain }}/reset/{{ uid }}/{{ token }}/{% verbatim %}"


def django_python() -> Path:
    """The venv's interpreter, creating the venv and installing Django on first use."""
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import django, sys; sys.exit(0 if django.VERSION[:2] == (5, 2) else 1)"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", DJANGO_SPEC], check=True)
    return python


def _template(rendered: str, url: str) -> str:
    return "{% verbatim %}" + rendered.replace(url, LINK) + "{% endverbatim %}"


def write_templates(workdir: Path) -> dict[str, int]:
    """Django templates made from reset-mcp's rendered reset email; returns the sizes.

    The email is the one the bench's own servers send: rendered from the bench settings
    (branding, reset URL, no "this wasn't me" link, as `bench_env` configures none) by the
    same path `reset-mcp preview` takes, with the masked token's link swapped for Django's.
    """
    from reset_mcp.app import composer_for, render_env
    from reset_mcp.emails.kind import MASK
    from reset_mcp.emails.outgoing import render_sample
    from reset_mcp.emails.registry import EmailKinds

    settings = bench_settings(workdir / "unused-data", 25)  # nothing is opened: only the composer is built
    rendered = render_sample(EmailKinds(), render_env(settings, composer_for(settings)), "password_reset")
    url = settings.reset_url.replace("{token}", MASK)
    if url not in rendered.text or url not in rendered.html:  # else Django would send no link at all
        raise RuntimeError(f"the rendered reset email does not carry its link {url!r}")
    folder = workdir / "templates" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reset.html").write_text(_template(rendered.html, url), encoding="utf-8")
    (folder / "reset.txt").write_text(_template(rendered.text, url), encoding="utf-8")
    (folder / "subject.txt").write_text(rendered.subject, encoding="utf-8")
    return {"ours_html_bytes": len(rendered.html.encode()), "ours_text_bytes": len(rendered.text.encode())}


async def run_peer(sink_port: int, n: int, workdir: Path, warmup: int) -> dict[str, Any]:
    """The peer's own output: recipient -> start, per-save durations, t0, elapsed, version."""
    python = django_python()
    peer = [str(HERE / "django_peer.py"), "--workdir", str(workdir), "--smtp-port", str(sink_port)]
    with anyio.fail_after(1800):
        proc = await anyio.run_process([str(python), *peer, "-n", str(n), "--warmup", str(warmup)], check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"django peer failed: {proc.stderr.decode()[-2000:]}")
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


async def row(sink_port: int, sink: SinkClient, n: int, workdir: Path, warmup: int = 30) -> dict[str, Any]:
    sizes = write_templates(workdir)
    base = await sink.count()
    raw_base = len(await sink.raw())
    await sink.capture(True)
    try:
        out = await run_peer(sink_port, n, workdir, warmup)
    finally:
        await sink.capture(False)
    delivered = await sink.wait(base + n + warmup, timeout=60)
    accepted = (await sink.records(since=base)).by_rcpt()
    starts: dict[str, float] = out["starts"]
    lat = [accepted[r] - s for r, s in starts.items() if r in accepted]
    end = max(accepted[r] for r in starts if r in accepted) if accepted else out["t0"] + out["elapsed"]
    result = summary(lat, end - out["t0"], n)
    raw = await sink.raw(since=raw_base)
    django_html = _html_size(raw[-1]) if raw else None
    result |= {
        "django_version": out["django"],
        "delivered": sum(1 for r in starts if r in accepted),
        "all_delivered": delivered and all(r in accepted for r in starts),
        "html_bytes_ours": sizes["ours_html_bytes"],
        "html_bytes_django": django_html,
        "latencies_ms": [round(v * 1000, 3) for v in lat],
    }
    return result


def _html_size(data: bytes) -> int | None:
    import email
    from email import policy

    part = email.message_from_bytes(data, policy=policy.default).get_body(("html",))
    return len(part.get_content().encode()) if part is not None else None
