"""Headless Chromium for the browser tests, and the folder their screenshots are kept in.

Debian's /usr/bin/chromium (or `RESET_MCP_CHROMIUM`), driven by Playwright: no browser
download. Without Chromium or Playwright a browser test skips, except under CI (the `CI`
environment variable), where it fails: `.ci/run` installs Chromium.

Screenshots go to `artifacts/screenshots/` at the top of the repository (gitignored), or
under `$RESET_MCP_ARTIFACTS`; CI keeps that folder, and `.ci/run` prints where it is.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("RESET_MCP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1100, "height": 900}
REPO = Path(__file__).resolve().parent.parent


def missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless Chromium (a Playwright `Browser`); skips or fails as above."""
    why = missing()
    if why and os.environ.get("CI"):
        pytest.fail(f"{why}; CI must run the browser tests (.ci/run installs Chromium)")
    if why:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def screenshots(*parts: str) -> Path:
    """The folder for this test's screenshots, created."""
    root = Path(os.environ.get("RESET_MCP_ARTIFACTS") or REPO / "artifacts")
    folder = root.joinpath("screenshots", *parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
