"""Rendering the built-in templates by filling a skeleton rendered once per shape.

A reset email is kilobytes of HTML in which only a few values change from one request to
the next (the link, the time, the IP, the device, the location, the name). The
built-in templates use those values only by printing them (escaped, in HTML) or by
testing whether they are empty, never by transforming or comparing them. So for one
"shape" (kind, locale, subject, and which values are empty, None or which number) the
template is rendered once with a marker in place of every non-empty string, split at
the markers, and from then on filled by a join: the same output as a Jinja2 render,
without its per-request Python (bench/README.md has what it saves).

The skeleton is only used where that reasoning holds: the composer enables it when
every template is a built-in one (an override may use `|upper` or `{% if x == ... %}`),
each new skeleton is checked against a full render of the request that made it, and
tests compare the two for random values in every kind and locale. Anything else (a
list in the view, a NUL in a value, a failed check) renders in full.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from markupsafe import escape

# Keys of the view the composer fills with per-locale constants (`t`, `brand`, ...):
# the same for every request of a shape, so neither slots nor part of the shape.
CONSTANT_KEYS = frozenset({"t", "brand", "lang", "dir", "subject"})
MAX_SHAPES = 512  # a bound on the cache; shapes are few (flags and config numbers)

_MARK = "\x00"  # views hold cleaned text: no control characters, so no NUL
_SLOT_RE = re.compile("\x00([0-9]+)\x00")
_FILLED = object()  # a shape entry for a non-empty string: its value is a slot

Shape = tuple[Any, ...]
Path = tuple[str, str | None]  # (view key, attribute of a namespace value or None)
Render = Callable[[dict[str, Any]], tuple[str, str]]  # view -> (text, html)


class _Split:
    """One rendered part, cut at the markers: the pieces to join and where values go."""

    __slots__ = ("pieces", "places")

    def __init__(self, rendered: str) -> None:
        pieces = _SLOT_RE.split(rendered)
        self.pieces = pieces  # fixed text, slot index, fixed text, ...
        self.places = [(place, int(pieces[place])) for place in range(1, len(pieces), 2)]

    def fill(self, values: list[str]) -> str:
        pieces = self.pieces.copy()
        for place, index in self.places:
            pieces[place] = values[index]
        return "".join(pieces)


class _Skeleton:
    __slots__ = ("html", "text")

    def __init__(self, text: str, html: str) -> None:
        self.text = _Split(text)
        self.html = _Split(html)

    def fill(self, values: list[str]) -> tuple[str, str]:
        return self.text.fill(values), self.html.fill([str(escape(v)) for v in values])


def _leaf(shape: list[Any], paths: list[Path], values: list[str], path: Path, value: object) -> bool:
    if isinstance(value, str):
        if value:
            if _MARK in value:
                return False
            shape.append(_FILLED)
            paths.append(path)
            values.append(value)
        else:
            shape.append("")
        return True
    if value is None or isinstance(value, int):  # bool is an int; numbers are config (ttl)
        shape.append(value)
        return True
    return False


def _flatten(view: dict[str, Any]) -> tuple[Shape, list[Path], list[str]] | None:
    """(shape, slot paths, slot values), or None when the view holds a list or object."""
    shape: list[Any] = []
    paths: list[Path] = []
    values: list[str] = []
    for key, value in view.items():
        if key in CONSTANT_KEYS:
            continue
        shape.append(key)
        if isinstance(value, SimpleNamespace):
            for attr, item in vars(value).items():
                shape.append(attr)
                if not _leaf(shape, paths, values, (key, attr), item):
                    return None
        elif not _leaf(shape, paths, values, (key, None), value):
            return None
    return tuple(shape), paths, values


def _marked(view: dict[str, Any], paths: list[Path]) -> dict[str, Any]:
    """The view with slot i's value replaced by the marker NUL i NUL."""
    marked = dict(view)
    for key, value in view.items():
        if isinstance(value, SimpleNamespace):
            marked[key] = SimpleNamespace(**vars(value))
    for index, (key, attr) in enumerate(paths):
        mark = f"{_MARK}{index}{_MARK}"
        if attr is None:
            marked[key] = mark
        else:
            setattr(marked[key], attr, mark)
    return marked


class SkeletonCache:
    """Skeletons by shape; `render` answers None where a full render is needed."""

    def __init__(self) -> None:
        self._cache: dict[Shape, _Skeleton | None] = {}

    def render(self, key: Shape, view: dict[str, Any], full: Render) -> tuple[str, str] | None:
        flat = _flatten(view)
        if flat is None:
            return None
        shape, paths, values = flat
        cache_key = (*key, *shape)
        if cache_key in self._cache:
            skeleton = self._cache[cache_key]
            return skeleton.fill(values) if skeleton is not None else None
        skeleton = _Skeleton(*full(_marked(view, paths)))
        result = skeleton.fill(values)
        # Checked once per shape against a full render of the request that made it.
        expected = full(view)
        # A marker the template changed (cut, cased, repeated) leaves a NUL or a wrong
        # value in the fill, and values hold no NUL: equality is the whole check.
        if result != expected:
            skeleton, result = None, expected
        if len(self._cache) >= MAX_SHAPES:
            self._cache.clear()
        self._cache[cache_key] = skeleton
        return result
