"""The built-in email kinds for tests: names, sample render data, a composer that knows them."""

from __future__ import annotations

from pathlib import Path

from reset_mcp.compose import Branding, Composer
from reset_mcp.emails.registry import BUILTIN, BUILTIN_NAMES

KINDS = BUILTIN_NAMES


def samples(*, minimal: bool = False) -> dict[str, object]:
    """Each kind's sample render data (full, or with every optional field empty)."""
    return {kind.name: kind.samples()[1 if minimal else 0] for kind in BUILTIN}


def composer(branding: Branding, template_dir: Path | None = None) -> Composer:
    return Composer(branding, template_dir, BUILTIN)
