"""Templates: golden files, overrides by name, broken overrides, CSS inlined ahead of time.

Golden files: `tests/golden/<kind>.en.html` hold the English HTML of each kind rendered
from the fixed sample data (each kind's `samples()`, clock fixed at 2026-01-01
12:00 UTC) with `GOLDEN_BRANDING`. After an intended change to a template, the CSS or
the English catalog, regenerate them and review the diff:

    UPDATE_GOLDEN=1 pytest tests/test_compose_templates.py -k golden
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from reset_mcp.compose import Branding, Composer
from reset_mcp.compose.inlining import NotPrecompilable, precompile
from reset_mcp.compose.loader import BUILTIN_DIR, specialize
from reset_mcp.errors import ConfigError
from tests.kinds import KINDS
from tests.kinds import composer as make_composer

GOLDEN_DIR = Path(__file__).parent / "golden"
GOLDEN_BRANDING = Branding(
    product_name="Acme",
    sender_name="Acme Security",
    logo_url="https://acme.example/logo.png",
    primary_color="#2563eb",
    support_url="https://acme.example/help",
    support_email="help@acme.example",
    postal_address="Acme Inc.\n1 Main Street\nSpringfield, USA",
    forgot_password_url="https://acme.example/forgot-password",
)


@pytest.fixture(scope="module")
def golden_composer() -> Composer:
    return make_composer(GOLDEN_BRANDING)


@pytest.mark.parametrize("kind", KINDS)
def test_golden_english_html(golden_composer, kind):
    html = golden_composer.sample(kind, locale="en").html
    path = GOLDEN_DIR / f"{kind}.en.html"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(html, "utf-8")
    assert path.exists(), f"missing {path}; run with UPDATE_GOLDEN=1"
    assert html == path.read_text("utf-8"), f"{path} differs; if intended, regenerate with UPDATE_GOLDEN=1"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, "utf-8")
    return path


def test_override_by_name_replaces_the_builtin(tmp_path):
    builtin = (BUILTIN_DIR / "password_reset.txt.j2").read_text("utf-8")
    write(tmp_path, "password_reset.txt.j2", builtin.replace("{{ t.reset_heading }}", "CUSTOM HEADING"))
    html = (BUILTIN_DIR / "security_alert.html.j2").read_text("utf-8")
    write(tmp_path, "security_alert.html.j2", html.replace("{{ t.alert_heading }}", "Custom alert"))
    c = make_composer(GOLDEN_BRANDING, template_dir=tmp_path)
    assert c.sample("password_reset").text.startswith("CUSTOM HEADING")
    assert "Custom alert</h1>" in c.sample("security_alert").html
    assert "Reset your password</h1>" in c.sample("password_reset").html  # others stay built-in
    assert c.inlines_at_render is False


def test_override_layout_and_new_partial(tmp_path):
    base = (BUILTIN_DIR / "base.txt.j2").read_text("utf-8")
    write(tmp_path, "base.txt.j2", base + '{% include "legal.txt.j2" %}\n')
    write(tmp_path, "legal.txt.j2", "Legal: {{ brand.product }} is a trademark.\n")
    text = make_composer(GOLDEN_BRANDING, template_dir=tmp_path).sample("password_changed", locale="de").text
    assert text.rstrip().endswith("Legal: Acme is a trademark.")


@pytest.mark.parametrize(
    ("name", "body", "line", "fragment"),
    [
        ("password_reset.html.j2", '{% extends "base.html.j2" %}\n{% block content %}\n<p>{{ name }</p>\n', 3, ""),
        ("security_alert.txt.j2", "line one\nline two\n{% if reason %}\nno end\n", 4, "endif"),
        ("oversight_notice.html.j2", "<p>\n{% for x in %}\n</p>", 2, ""),
    ],
)
def test_broken_override_names_file_and_line(tmp_path, name, body, line, fragment):
    path = write(tmp_path, name, body)
    with pytest.raises(ConfigError) as info:
        make_composer(GOLDEN_BRANDING, template_dir=tmp_path)
    message = str(info.value)
    assert str(path) in message and f"line {line}" in message and fragment in message


def test_override_failing_at_render_fails_at_start(tmp_path):
    path = write(tmp_path, "password_changed.txt.j2", "Hello\n\n{{ no_such_variable.field }}\n")
    with pytest.raises(ConfigError) as info:
        make_composer(GOLDEN_BRANDING, template_dir=tmp_path)
    assert f"template {path}, line 3" in str(info.value) and "no_such_variable" in str(info.value)


def test_override_with_unknown_message_fails_at_start(tmp_path):
    path = write(tmp_path, "password_changed.txt.j2", '{{ t("greeting") }}\n{{ t("nope") }}\n')
    with pytest.raises(ConfigError) as info:
        make_composer(GOLDEN_BRANDING, template_dir=tmp_path)
    assert str(path) in str(info.value) and "nope" in str(info.value)


def test_bad_template_dir_and_bad_encoding(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        make_composer(GOLDEN_BRANDING, template_dir=tmp_path / "missing")
    (tmp_path / "password_reset.txt.j2").write_bytes(b"caf\xe9 {{ x }}")
    with pytest.raises(ConfigError, match="not UTF-8"):
        make_composer(GOLDEN_BRANDING, template_dir=tmp_path)


def test_override_that_cannot_be_inlined_ahead_of_time_is_inlined_per_render(tmp_path):
    write(
        tmp_path,
        "password_changed.html.j2",
        '{% extends "base.html.j2" %}\n{% block content %}\n'
        '<h1 class="h1" {% if name %}data-named="yes"{% endif %}>{{ t.changed_heading }}</h1>\n'
        "{% endblock %}\n",
    )
    c = make_composer(GOLDEN_BRANDING, template_dir=tmp_path)
    assert c.inlines_at_render is True
    html = c.sample("password_changed").html
    assert re.search(r'<h1 class="h1" data-named="yes" style="margin: 0 0 16px 0;', html)
    assert html.count("@media") == 2 and html.count("<style") == 1
    reset = c.sample("password_reset").html
    assert reset.count("@media") == 2 and 'class="btn" style="display: inline-block;' in reset


def test_precompile_keeps_every_jinja_construct():
    css = ".a { color: red; } .b { margin: 0; } @media (max-width: 10px) { .a { color: blue !important; } }"
    source = (
        '<p class="a" title="{{ t("x\\"y") }}">{% if a %}<b class="b">{{ a }}</b>{% endif %}</p>\n'
        '<table class="b"><tbody>{% for r in rows %}<tr><td class="a">{{ r }}</td></tr>{% endfor %}</tbody></table>'
        "{# note #}"
    )
    out = precompile(source, css)
    for construct in (
        '{{ t("x\\"y") }}',
        "{% if a %}",
        "{{ a }}",
        "{% endif %}",
        "{% for r in rows %}",
        "{% endfor %}",
        "{# note #}",
    ):
        assert construct in out
    assert '<p class="a" style="color: red;"' in out.replace('title="{{ t("x\\"y") }}" ', "")
    assert '<td class="a" style="color: red;">{{ r }}</td>' in out


@pytest.mark.parametrize(
    "source",
    [
        '<table><tr><td class="a">x</td></tr></table>',  # the parser would add <tbody>
        "<table><tbody>{% for r in rows %}<div>{{ r }}</div>{% endfor %}</tbody></table>",  # foster parenting
        '<p {% if a %}class="a"{% endif %}>x</p>',  # Jinja where an attribute name goes
        "<style>.a { color: {{ c }} }</style>",
    ],
)
def test_precompile_refuses_what_it_cannot_round_trip(source):
    with pytest.raises(NotPrecompilable):
        precompile(source, ".a { color: red; }")


def test_specialize_turns_messages_and_branding_into_constants():
    constants = {"t": {"hi": "It's \\ {ok}"}, "brand": {"product": "Acme", "logo_url": None, "lines": ("a",)}}
    source = "t.hi {{ t.hi }} {{ t('x', n=t.hi) }} {{ t.plural('m', 2) }} {{ brand.product }}{{ brand.logo_url }}"
    out = specialize(source, constants)
    assert out.startswith("t.hi ")  # static text is left alone
    assert "{{ 'It\\'s \\\\ {ok}' }}" in out and "n='It\\'s \\\\ {ok}'" in out
    assert "t.plural('m', 2)" in out and "{{ 'Acme' }}{{ none }}" in out


def test_inlined_markup_is_ascii_outside_raw_text_elements() -> None:
    # css-inline decodes entities; the loader writes non-ASCII markup back as references
    # (so an English email is ASCII), but not inside <style>, where `&#N;` is literal.
    from reset_mcp.compose.inlining import _ascii_markup

    html = '<p title="a·b">Grüße &amp; {{ x }}</p><style>.a::after { content: "·"; }</style><p>😀</p>'
    assert _ascii_markup(html) == (
        '<p title="a&#183;b">Gr&#252;&#223;e &amp; {{ x }}</p>'
        '<style>.a::after { content: "·"; }</style><p>&#128512;</p>'
    )
