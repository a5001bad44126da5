"""Finding, checking, inlining and compiling the templates.

Built-in templates live in `templates/`; a `template_dir` (RESET_MCP_TEMPLATE_DIR)
overrides any of them by file name and may add partials. Every `*.j2` file is read,
parsed and compiled when the composer starts, so a broken custom template stops the
start with a ConfigError naming the file and line instead of failing the first send.

Two things make a render cheap:

- CSS is inlined once, into the template source (see `inlining`); the `<style>`
  blocks of `base.html.j2` are the style sheet, and only its media queries stay in
  the rendered `<head>`.
- Templates are compiled per locale with every message that needs no argument
  (`t.key`) and every branding value (`brand.attr`) turned into a constant, which
  Jinja2 folds (and, for HTML, escapes) at compile time. English is compiled at
  start, another locale the first time it is asked for; `t("key", arg=...)` and `t.plural(...)` stay calls.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

import css_inline
from jinja2 import BaseLoader, Environment, StrictUndefined, Template, TemplateNotFound, TemplateSyntaxError

from reset_mcp.compose.inlining import JINJA_RE, NotPrecompilable, extract_css, precompile, runtime_inliner
from reset_mcp.errors import ConfigError

log = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).parent / "templates"
LAYOUT = "base.html.j2"
_CONSTANT_RE = re.compile(r"(?<![.\w])(t|brand)\.([A-Za-z_]\w*)\b(?!\s*[(.\[])")

Sources = dict[str, tuple[str, str]]  # template name -> (source, file name)


class _SourceLoader(BaseLoader):
    """Serves sources already read (and transformed) under their real file names."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        try:
            source, filename = self.sources[template]
        except KeyError:
            raise TemplateNotFound(template) from None
        return source, filename, lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self.sources)


def make_env(*, html: bool, sources: Sources) -> Environment:
    """HTML autoescapes; text does not (its values arrive cleaned of control chars)."""
    options = {
        "loader": _SourceLoader(sources),
        "undefined": StrictUndefined,
        "trim_blocks": True,
        "lstrip_blocks": True,
        "auto_reload": False,
        "cache_size": -1,
    }
    if html:
        return Environment(autoescape=True, **options)
    # The text/plain part: escaping would print "&lt;" to the reader; no HTML here.
    return Environment(autoescape=False, **options)  # noqa: S701


def is_html(name: str) -> bool:
    return ".html" in name


def _jinja_literal(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return "(" + "".join(_jinja_literal(item) + ", " for item in value) + ")"
    text = str(value)
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "")
    return f"'{escaped}'"


def specialize(source: str, constants: Mapping[str, Mapping[str, object]]) -> str:
    """Replace `t.key` and `brand.attr` inside Jinja constructs with constants.

    `constants` maps "t" and "brand" to their values (str, None or a tuple of
    str); Jinja2 then folds them at compile time, and escapes them there for HTML.
    """

    def constant(m: re.Match[str]) -> str:
        values = constants.get(m.group(1), {})
        return _jinja_literal(values[m.group(2)]) if m.group(2) in values else m.group(0)

    return JINJA_RE.sub(lambda construct: _CONSTANT_RE.sub(constant, construct.group(0)), source)


def _collect(template_dir: Path | None) -> dict[str, Path]:
    files = {p.name: p for p in BUILTIN_DIR.glob("*.j2") if p.is_file()}
    if template_dir is not None:
        directory = Path(template_dir)
        if not directory.is_dir():
            raise ConfigError(f"template directory {directory} does not exist or is not a directory")
        files.update({p.name: p for p in directory.glob("*.j2") if p.is_file()})
    return files


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"template {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"template {path}: cannot be read ({exc.strerror})") from exc


def _syntax_error(filename: str, exc: TemplateSyntaxError) -> ConfigError:
    return ConfigError(f"template {filename}, line {exc.lineno}: {exc.message}")


class TemplateSet:
    """Every template, read and checked; compiled per locale on demand."""

    def __init__(self, kinds: tuple[str, ...], template_dir: Path | None = None) -> None:
        self.kinds = kinds
        self.files = _collect(template_dir)
        raw: Sources = {name: (_read(path), str(path)) for name, path in self.files.items()}
        for name in (f"{kind}.{part}.j2" for kind in kinds for part in ("html", "txt")):
            if name not in raw:
                raise ConfigError(f"template {name} is missing")
        checker = make_env(html=True, sources=raw)
        for name, (source, filename) in raw.items():  # raw sources: the file's own line numbers
            try:
                checker.parse(source, name, filename)
            except TemplateSyntaxError as exc:
                raise _syntax_error(filename, exc) from exc
        self._text_sources = raw
        self.builtin_only = all(path.parent == BUILTIN_DIR for path in self.files.values())
        self._html_sources, self.inliner = self._inline(raw)
        self._compiled: dict[str, tuple[dict[str, Template], dict[str, Template]]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _inline(raw: Sources) -> tuple[Sources, css_inline.CSSInliner | None]:
        """Sources with CSS inlined ahead of time, or the raw ones and a render-time inliner.

        All or nothing: if one HTML template cannot be inlined ahead of time, none is,
        and each rendered email is inlined whole (correct, but css-inline then costs
        about twice the rest of the render).
        """
        inlined = dict(raw)
        filename = raw[LAYOUT][1] if LAYOUT in raw else LAYOUT
        try:
            css = extract_css(raw[LAYOUT][0]) if LAYOUT in raw else ""
            for name, (source, filename) in raw.items():
                if is_html(name):
                    inlined[name] = (precompile(source, css), filename)
        except NotPrecompilable as exc:
            log.info("CSS is inlined at render time because of %s: %s", filename, exc)
            return raw, runtime_inliner()
        return inlined, None

    def compiled(
        self, locale: str, constants: Mapping[str, Mapping[str, object]]
    ) -> tuple[dict[str, Template], dict[str, Template]]:
        """(HTML, text) templates per kind for `locale`, compiling them on first use."""
        found = self._compiled.get(locale)
        if found is not None:
            return found
        with self._lock:
            found = self._compiled.get(locale)
            if found is None:
                found = self._compile(constants)
                self._compiled[locale] = found
        return found

    def _compile(
        self, constants: Mapping[str, Mapping[str, object]]
    ) -> tuple[dict[str, Template], dict[str, Template]]:
        sets = []
        for html, sources in ((True, self._html_sources), (False, self._text_sources)):
            special = {name: (specialize(src, constants), fn) for name, (src, fn) in sources.items()}
            env = make_env(html=html, sources=special)
            templates = {}
            for name, (_, filename) in special.items():
                if is_html(name) != html:
                    continue
                try:
                    template = env.get_template(name)
                except TemplateSyntaxError as exc:  # only if inlining broke a template that parsed
                    raise _syntax_error(filename, exc) from exc
                # A plain dict instead of a ChainMap: every render copies the globals,
                # and copying a ChainMap runs in Python (a tenth of the render time).
                template.globals = dict(template.globals)
                templates[name] = template
            sets.append({kind: templates[f"{kind}.{'html' if html else 'txt'}.j2"] for kind in self.kinds})
        return sets[0], sets[1]


def locate(exc: BaseException) -> str:
    """'template FILE, line N' for the deepest template frame of a render error."""
    where = "a template"
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            where = f"template {filename}, line {tb.tb_lineno}"
        tb = tb.tb_next
    return where
