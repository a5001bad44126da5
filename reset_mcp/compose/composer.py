"""The composer: an email kind's data in, a `RenderedEmail` (subject, text, HTML) out.

It knows no kind by name: the kinds are handed to it (`emails/` defines them), each
saying how its data becomes template variables (`view`), which subject it takes and
what sample data previews and the start-up self-test use. The composer owns what every
kind shares: branding, locales, templates, the subject's length, cleaning.

Everything costly happens in `__init__`: catalogs are loaded, subjects built (they
carry no user input, only the cleaned product name), templates read, checked,
CSS-inlined and compiled, and every kind is rendered once with full and with minimal
sample data, so a broken override fails at start. A render is then two Jinja2 template
calls, or, for the built-in templates, the filling of a skeleton rendered once per
shape (`skeleton.py`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from jinja2 import TemplateError

from reset_mcp.compose import views
from reset_mcp.compose.cleaning import clean_header_text, defang_markup
from reset_mcp.compose.i18n import (
    SUPPORTED_LOCALES,
    Formatter,
    HtmlTranslator,
    TextTranslator,
    load_catalogs,
    resolve_locale,
    resolve_timezone,
)
from reset_mcp.compose.loader import TemplateSet, locate
from reset_mcp.compose.models import Branding, RenderedEmail
from reset_mcp.compose.skeleton import SkeletonCache
from reset_mcp.errors import ConfigError, InvalidInputError, ResetMCPError

SUBJECT_LIMIT = 77  # RFC 5322 recommends lines under 78 characters
_MANY_NEWLINES_RE = re.compile(r"\n{3,}")


class Renderable(Protocol):
    """What the composer needs of an email kind (see `emails/kind.py`)."""

    name: str
    label: str  # English; the default of the localised message `kind_<name>`
    subject_keys: tuple[str, ...]  # every message key `subject_key` may answer
    messages: Mapping[str, str]  # English defaults for the kind's own messages; locale files may translate them

    def view(self, data: Any, fmt: Formatter, tt: TextTranslator) -> dict[str, Any]:
        """The template variables for `data` (see `views` for what every kind shares)."""
        ...

    def subject_key(self, data: Any) -> str: ...

    def samples(self) -> tuple[Any, Any]:
        """Sample data (full, minimal): previews, golden files and the start-up self-test."""
        ...


def _subject(message: str, product: str) -> str:
    """The message with the product name cut to fit, so the subject stays <= 77."""
    room = SUBJECT_LIMIT - len(message.replace("{product}", ""))
    name = clean_header_text(product, room) if room > 1 else ""
    return defang_markup(clean_header_text(message.format(product=name), SUBJECT_LIMIT))


class Composer:
    """Renders the kinds it was given, branded and localised."""

    def __init__(self, branding: Branding, template_dir: Path | None, kinds: Sequence[Renderable]) -> None:
        self._kinds = {kind.name: kind for kind in kinds}
        self._brand = views.brand_view(branding)
        defaults = {f"kind_{kind.name}": kind.label for kind in kinds}
        catalogs = load_catalogs(defaults | {key: text for kind in kinds for key, text in kind.messages.items()})
        filled = {
            "product": self._brand.product,
            "sender": self._brand.sender,
            "support_email": self._brand.support_email or "",
        }
        self._text_t = {tag: TextTranslator(cat, filled) for tag, cat in catalogs.items()}
        self._html_t = {tag: HtmlTranslator(cat, filled) for tag, cat in catalogs.items()}
        self._subjects = {
            (tag, key): _subject(cat.strings[key], self._brand.product)
            for tag, cat in catalogs.items()
            for kind in kinds
            for key in kind.subject_keys
        }
        brand_constants = vars(self._brand)
        self._constants = {
            tag: {"t": translator.constants(), "brand": brand_constants} for tag, translator in self._text_t.items()
        }
        self._templates = TemplateSet(tuple(self._kinds), template_dir)
        # Skeleton rendering only for the built-in templates, inlined ahead of time (see skeleton.py).
        builtin = self._templates.builtin_only and self._templates.inliner is None
        self._skeletons: SkeletonCache | None = SkeletonCache() if builtin else None
        self._self_test()

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    @property
    def inlines_at_render(self) -> bool:
        """True when some HTML template could not be CSS-inlined ahead of time (slower)."""
        return self._templates.inliner is not None

    def preload(self, *locales: str) -> None:
        """Compile the templates of these locales now (all when none is named)."""
        for tag in {resolve_locale(tag) for tag in locales} or SUPPORTED_LOCALES:
            self._templates.compiled(tag, self._constants[tag])

    def render(
        self, kind: str, data: object, *, locale: str | None = None, timezone: str | None = None
    ) -> RenderedEmail:
        """Render `data` as an email of `kind`; unknown kind -> InvalidInputError."""
        spec = self._kind(kind)
        return self._render(spec, data, spec.subject_key(data), locale, timezone)

    def sample(self, kind: str, *, locale: str | None = None, timezone: str | None = None) -> RenderedEmail:
        """A preview of `kind` with its sample data; mints nothing, sends nothing."""
        return self.render(kind, self._kind(kind).samples()[0], locale=locale, timezone=timezone)

    # -- machinery ------------------------------------------------------------------

    def _kind(self, kind: str) -> Renderable:
        spec = self._kinds.get(kind)
        if spec is None:
            raise InvalidInputError(f"unknown email kind {kind!r}; choose one of: {', '.join(self._kinds)}")
        return spec

    def _render(
        self, spec: Renderable, data: Any, subject_key: str, locale: str | None, timezone: str | None
    ) -> RenderedEmail:
        kind = spec.name
        tag = resolve_locale(locale)
        text_t = self._text_t[tag]
        fmt = Formatter(text_t.catalog, resolve_timezone(timezone))
        view = spec.view(data, fmt, text_t)
        subject = self._subjects[(tag, subject_key)]
        view["brand"] = self._brand
        view["lang"] = tag
        view["dir"] = text_t.catalog.dir
        view["subject"] = subject

        def full(values: dict[str, Any]) -> tuple[str, str]:
            return self._jinja(kind, tag, values)

        parts = self._skeletons.render((kind, tag, subject_key), view, full) if self._skeletons else None
        text, html = parts if parts is not None else full(view)
        if self._templates.inliner is not None:
            html = self._templates.inliner.inline(html)
        if "\n\n\n" in text:
            text = _MANY_NEWLINES_RE.sub("\n\n", text)
        text = defang_markup(text.strip()) + "\n"
        return RenderedEmail(subject=subject, text=text, html=html)

    def _jinja(self, kind: str, tag: str, view: dict[str, Any]) -> tuple[str, str]:
        """(text, HTML) as the compiled templates render them."""
        html_templates, text_templates = self._templates.compiled(tag, self._constants[tag])
        text = text_templates[kind].render(view, t=self._text_t[tag])
        html = html_templates[kind].render(view, t=self._html_t[tag])
        return text, html

    def _self_test(self) -> None:
        """Compile English and render every kind with full and minimal data now.

        A bad override fails here, at start. Other locales compile on first use
        (or `preload`); they differ only in the message constants.
        """
        for spec in self._kinds.values():
            for data in spec.samples():
                kind = spec.name
                try:
                    self.render(kind, data, locale="en")
                except ResetMCPError:
                    raise
                except (TemplateError, LookupError, TypeError, ValueError, AttributeError) as exc:
                    raise ConfigError(f"{locate(exc)}: rendering {kind} failed: {type(exc).__name__}: {exc}") from exc
