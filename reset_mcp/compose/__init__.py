"""Branded, localised emails: the renderer every email kind shares.

    composer = Composer(Branding(product_name="Acme"), template_dir=None, kinds=BUILTIN_KINDS)
    email = composer.render("password_reset", data, locale="de-AT", timezone="Europe/Vienna")
    email.subject, email.text, email.html

Templates (`templates/<kind>.html.j2`, `<kind>.txt.j2`, `base.*.j2`, `macros.html.j2`)
render with Jinja2: HTML with autoescape, text without escaping but from values
already cleaned of control and bidi characters. A `template_dir` overrides any
built-in by file name; every template is checked when the Composer is built.
Messages live in `locales/<lang>.json`. The kinds themselves live in `emails/`.
"""

from reset_mcp.compose.cleaning import clean_header_text
from reset_mcp.compose.composer import SUBJECT_LIMIT, Composer, Renderable
from reset_mcp.compose.i18n import SUPPORTED_LOCALES, resolve_locale, resolve_timezone
from reset_mcp.compose.models import Branding, RenderedEmail, RequestContext

__all__ = [
    "SUBJECT_LIMIT",
    "SUPPORTED_LOCALES",
    "Branding",
    "Composer",
    "Renderable",
    "RenderedEmail",
    "RequestContext",
    "clean_header_text",
    "resolve_locale",
    "resolve_timezone",
]
