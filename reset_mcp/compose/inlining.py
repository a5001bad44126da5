"""CSS inlining done once, on the template source, instead of on every render.

css-inline parses HTML, and a Jinja2 template is not HTML: `{% if %}` between table
rows would be foster-parented out of the table, a quote inside `{{ t("x") }}` would
be escaped. So each Jinja construct is swapped for a placeholder the HTML parser
carries through untouched (an HTML comment between elements, a bare token inside an
attribute value or `<title>`), the markup is inlined, and the constructs are put back.

The round trip is checked: every placeholder must come back once, in source order
(placeholders inside one tag may be reordered with its attributes), and every
start tag must survive (no implied `<tbody>`, no auto-closed `<p>`). If one template
fails the check, or puts Jinja where an attribute name goes, no template is inlined
ahead of time and the composer inlines each rendered email instead (see `loader`):
slower, never wrong.
"""

from __future__ import annotations

import re
from collections import Counter

import css_inline

JINJA_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_SLOT_RE = re.compile(r"<!--jjslot(\d+)x-->|jjslot(\d+)x")
_BARE_RE = re.compile(r"jjslot(\d+)x")
_ORDER_RE = re.compile(r"<!--jjslot(\d+)x-->|jjslot(\d+)x|<[a-zA-Z][^>]*>")
_TAG_RE = re.compile(r"<([a-zA-Z][a-zA-Z0-9-]*)(?=[\s/>])[^>]*>")
_STYLE_RE = re.compile(r"<style[^>]*>(.*?)</style\s*>", re.DOTALL | re.IGNORECASE)
_RAW_TEXT = ("title", "textarea")  # escaped text: a comment would not survive
_FORBIDDEN_RAW = ("style", "script")  # Jinja there is not inlined ahead of time

_TEXT, _COMMENT, _TAG, _DQ, _SQ, _RAW = range(6)


class NotPrecompilable(Exception):
    """The template cannot be inlined ahead of time; inline it at render time."""


def extract_css(source: str) -> str:
    """The CSS of every `<style>` block of a layout (empty when it holds Jinja)."""
    css = "\n".join(_STYLE_RE.findall(source))
    if JINJA_RE.search(css):
        raise NotPrecompilable("Jinja inside <style>")
    return css


def _scan(chunk: str, state: int, raw_tag: str) -> tuple[int, str]:
    """Advance a tiny HTML tokenizer over static markup; returns (state, raw tag)."""
    i, n = 0, len(chunk)
    while i < n:
        ch = chunk[i]
        if state == _TEXT:
            if chunk.startswith("<!--", i):
                state, i = _COMMENT, i + 4
                continue
            if ch == "<":
                m = re.match(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)", chunk[i:])
                if m:
                    state = _TAG
                    raw_tag = m.group(2).lower() if not m.group(1) else ""
                    i += m.end()
                    continue
        elif state == _COMMENT:
            if chunk.startswith("-->", i):
                state, i = _TEXT, i + 3
                continue
        elif state == _TAG:
            if ch == '"':
                state = _DQ
            elif ch == "'":
                state = _SQ
            elif ch == ">":
                state = _RAW if raw_tag in _RAW_TEXT + _FORBIDDEN_RAW else _TEXT
        elif state == _DQ:
            if ch == '"':
                state = _TAG
        elif state == _SQ:
            if ch == "'":
                state = _TAG
        elif state == _RAW and chunk.startswith(f"</{raw_tag}", i):
            state = _TEXT
        i += 1
    return state, raw_tag


def _protect(source: str) -> tuple[str, list[str]]:
    """Swap every Jinja construct for a placeholder that fits where it stands."""
    out: list[str] = []
    saved: list[str] = []
    state, raw_tag, pos = _TEXT, "", 0
    for match in JINJA_RE.finditer(source):
        out.append(source[pos : match.start()])
        state, raw_tag = _scan(source[pos : match.start()], state, raw_tag)
        slot = len(saved)
        saved.append(match.group(0))
        if state == _TEXT:
            out.append(f"<!--jjslot{slot}x-->")
        elif state in (_DQ, _SQ, _COMMENT) or (state == _RAW and raw_tag in _RAW_TEXT):
            out.append(f"jjslot{slot}x")
        else:  # an attribute name position, unquoted value, <style> or <script>
            raise NotPrecompilable("Jinja outside an attribute value inside a tag, or in <style>/<script>")
        pos = match.end()
    out.append(source[pos:])
    return "".join(out), saved


def _restore(html: str, saved: list[str]) -> str:
    """Put the constructs back, after checking each came through once and in order."""
    order: list[int] = []
    for m in _ORDER_RE.finditer(html):
        if m.group(1) is not None:  # a comment placeholder between elements
            order.append(int(m.group(1)))
        elif m.group(2) is not None:  # a bare token in <title> text
            order.append(int(m.group(2)))
        else:  # a tag: its attributes may have been reordered
            order.extend(sorted(int(n) for n in _BARE_RE.findall(m.group(0))))
    if order != list(range(len(saved))):
        raise NotPrecompilable("the HTML parser lost, duplicated or moved a Jinja construct")
    return _SLOT_RE.sub(lambda m: saved[int(m.group(1) or m.group(2))], html)


def _start_tags(html: str) -> Counter[str]:
    return Counter(name for name in (m.group(1).lower() for m in _TAG_RE.finditer(html)) if name != "style")


_DOCUMENT = css_inline.CSSInliner(keep_at_rules=True, keep_link_tags=True, load_remote_stylesheets=False)
_FRAGMENT = css_inline.CSSInliner(keep_link_tags=True, load_remote_stylesheets=False)


def precompile(source: str, css: str) -> str:
    """`source` with the CSS inlined into its static markup; raises NotPrecompilable.

    A full document (it has `<html`) is inlined with its own `<style>` blocks, of
    which only the at-rules (media queries) are kept; any other template is treated
    as a fragment of the layout and inlined with the layout's `css`.
    """
    if "jjslot" in source:
        raise NotPrecompilable("the source already contains the placeholder marker")
    protected, saved = _protect(source)
    try:
        if re.search(r"<html[\s>]", protected, re.IGNORECASE):
            html = _style_last(_DOCUMENT.inline(protected))
        else:
            html = _FRAGMENT.inline_fragment(protected, css)
    except (css_inline.InlineError, ValueError) as exc:
        raise NotPrecompilable(f"css-inline failed: {exc}") from exc
    if _start_tags(html) != _start_tags(protected):
        raise NotPrecompilable("the HTML parser added or dropped elements (write <tbody> explicitly)")
    return _restore(_ascii_markup(html), saved)


_RAW_ELEMENT_RE = re.compile(r"<(style|script)\b.*?</\1\s*>", re.DOTALL | re.IGNORECASE)


def _refs(text: str) -> str:
    return text.encode("ascii", "xmlcharrefreplace").decode("ascii")


def _ascii_markup(html: str) -> str:
    """Non-ASCII characters of the markup as numeric references (`&#847;`).

    css-inline decodes the template's entities (the preheader's `&#847;&zwnj;&nbsp;`
    padding, `&middot;`) into characters; written back as references, an English email
    is ASCII unless a value is not, so `mime` sends its HTML as 7bit without a
    re-encoding pass. A reference means the same character in text and in attribute
    values alike; inside `<style>` and `<script>` it would be read literally, so those
    stay as they are. Jinja constructs are still placeholders here (ASCII), untouched.
    """
    if html.isascii():
        return html
    out, pos = [], 0
    for raw in _RAW_ELEMENT_RE.finditer(html):
        out += [_refs(html[pos : raw.start()]), raw.group(0)]
        pos = raw.end()
    out.append(_refs(html[pos:]))
    return "".join(out)


def _style_last(html: str) -> str:
    """Move the kept media queries after the `<meta>` tags (charset comes first)."""
    m = re.search(r"<head>(<style>.*?</style>)", html, re.DOTALL)
    if not m or "</head>" not in html:
        return html
    html = html[: m.start(1)] + html[m.end(1) :]
    return html.replace("</head>", m.group(1) + "\n</head>", 1)


def runtime_inliner() -> css_inline.CSSInliner:
    """The slow path: inline a whole rendered email, keeping only its media queries."""
    return css_inline.CSSInliner(keep_at_rules=True, keep_link_tags=True, load_remote_stylesheets=False)
