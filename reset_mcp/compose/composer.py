"""The composer: data in, a `RenderedEmail` (subject, text, HTML) out.

Everything costly happens in `__init__`: catalogs are loaded, subjects built (they
carry no user input, only the cleaned product name), templates read, checked,
CSS-inlined and compiled, and every kind is rendered once in every locale with
full and with minimal sample data, so a broken override fails at start.
A render is then two Jinja2 template calls, or, for the built-in templates, the
filling of a skeleton rendered once per shape (`skeleton.py`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from reset_mcp.compose.models import (
    Branding,
    OversightNoticeData,
    PasswordChangedData,
    PasswordResetData,
    RenderedEmail,
    SecurityAlertData,
)
from reset_mcp.compose.samples import samples
from reset_mcp.compose.skeleton import SkeletonCache
from reset_mcp.errors import ConfigError, InvalidInputError, ResetMCPError

KINDS: tuple[str, ...] = ("password_reset", "security_alert", "password_changed", "oversight_notice")
SUBJECT_LIMIT = 77  # RFC 5322 recommends lines under 78 characters

_SUBJECT_KEYS = (
    "reset_subject",
    "alert_subject",
    "changed_subject",
    "notice_subject_held",
    "notice_subject_sent",
    "notice_subject_other",
)
_BUILD: dict[str, Callable[..., dict[str, Any]]] = {
    "password_reset": views.password_reset,
    "security_alert": views.security_alert,
    "password_changed": views.password_changed,
    "oversight_notice": views.oversight_notice,
}
_MANY_NEWLINES_RE = re.compile(r"\n{3,}")


def _subject(message: str, product: str) -> str:
    """The message with the product name cut to fit, so the subject stays <= 77."""
    room = SUBJECT_LIMIT - len(message.replace("{product}", ""))
    name = clean_header_text(product, room) if room > 1 else ""
    return defang_markup(clean_header_text(message.format(product=name), SUBJECT_LIMIT))


class Composer:
    """Renders the four email kinds, branded and localised; see `KINDS`."""

    def __init__(self, branding: Branding, template_dir: Path | None = None) -> None:
        self._brand = views.brand_view(branding)
        catalogs = load_catalogs()
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
            for key in _SUBJECT_KEYS
        }
        brand_constants = vars(self._brand)
        self._constants = {
            tag: {"t": translator.constants(), "brand": brand_constants} for tag, translator in self._text_t.items()
        }
        self._templates = TemplateSet(KINDS, template_dir)
        # Skeleton rendering only for the built-in templates, inlined ahead of time (see skeleton.py).
        builtin = self._templates.builtin_only and self._templates.inliner is None
        self._skeletons: SkeletonCache | None = SkeletonCache() if builtin else None
        self._self_test()

    @property
    def inlines_at_render(self) -> bool:
        """True when some HTML template could not be CSS-inlined ahead of time (slower)."""
        return self._templates.inliner is not None

    def preload(self, *locales: str) -> None:
        """Compile the templates of these locales now (all when none is named)."""
        for tag in {resolve_locale(tag) for tag in locales} or SUPPORTED_LOCALES:
            self._templates.compiled(tag, self._constants[tag])

    # -- the four kinds -------------------------------------------------------------

    def password_reset(
        self, data: PasswordResetData, *, locale: str | None = None, timezone: str | None = None
    ) -> RenderedEmail:
        return self._render("password_reset", data, "reset_subject", locale, timezone)

    def security_alert(
        self, data: SecurityAlertData, *, locale: str | None = None, timezone: str | None = None
    ) -> RenderedEmail:
        return self._render("security_alert", data, "alert_subject", locale, timezone)

    def password_changed(
        self, data: PasswordChangedData, *, locale: str | None = None, timezone: str | None = None
    ) -> RenderedEmail:
        return self._render("password_changed", data, "changed_subject", locale, timezone)

    def oversight_notice(
        self, data: OversightNoticeData, *, locale: str | None = None, timezone: str | None = None
    ) -> RenderedEmail:
        decision = (data.decision or "").strip().lower()
        key = f"notice_subject_{decision if decision in ('held', 'sent') else 'other'}"
        return self._render("oversight_notice", data, key, locale, timezone)

    def render(
        self, kind: str, data: object, *, locale: str | None = None, timezone: str | None = None
    ) -> RenderedEmail:
        """Dispatch by kind name (what the outbox stores); unknown kind -> InvalidInputError."""
        method = getattr(self, _check_kind(kind))
        return method(data, locale=locale, timezone=timezone)

    def sample(self, kind: str, *, locale: str | None = None, timezone: str | None = None) -> RenderedEmail:
        """A preview of `kind` with fixed sample data; mints nothing, sends nothing."""
        return self.render(kind, samples()[_check_kind(kind)], locale=locale, timezone=timezone)

    # -- machinery ------------------------------------------------------------------

    def _render(
        self, kind: str, data: Any, subject_key: str, locale: str | None, timezone: str | None
    ) -> RenderedEmail:
        tag = resolve_locale(locale)
        text_t = self._text_t[tag]
        fmt = Formatter(text_t.catalog, resolve_timezone(timezone))
        view = _BUILD[kind](data, fmt, text_t)
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
        for variant in (samples(), samples(minimal=True)):
            for kind, data in variant.items():
                try:
                    self.render(kind, data, locale="en")
                except ResetMCPError:
                    raise
                except (TemplateError, LookupError, TypeError, ValueError, AttributeError) as exc:
                    raise ConfigError(f"{locate(exc)}: rendering {kind} failed: {type(exc).__name__}: {exc}") from exc


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInputError(f"unknown email kind {kind!r}; choose one of: {', '.join(KINDS)}")
    return kind
