"""mime.to_bytes: each body as 7bit where RFC 2045 allows it, else quoted-printable.

Whatever the encoding, a mail reader must get back the body the composer rendered (the
HTML up to character references, which a reader decodes to the same characters).
"""

from __future__ import annotations

import email
import html as html_lib
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reset_mcp.app import App
from reset_mcp.compose.i18n import SUPPORTED_LOCALES
from reset_mcp.compose.models import Branding
from reset_mcp.errors import InvalidInputError
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail import OutgoingEmail, mime
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.mail.mime import to_bytes
from reset_mcp.mail.smtp_pipeline import wire_data
from tests.conftest import CHROME_UA, token_from
from tests.kinds import composer as make_composer
from tests.kinds import samples


def make(text: str = "Hello\n", html: str = "<p>Hello</p>", **over: Any) -> OutgoingEmail:
    fields: dict[str, Any] = {
        "message_id": "<msg_1@acme.test>",
        "idempotency_key": "msg_1",
        "kind": "password_reset",
        "from_address": "auth@acme.test",
        "from_name": "Acme",
        "to": "bob@example.com",
        "subject": "Reset your Acme password",
        "text": text,
        "html": html,
        "date": datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
    }
    return OutgoingEmail(**(fields | over))


def parts(raw: bytes) -> dict[str, tuple[str, str]]:
    """content subtype -> (Content-Transfer-Encoding, decoded body with LF line ends)."""
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage) and msg.get_content_type() == "multipart/alternative"
    out = {}
    for part in msg.iter_parts():
        assert isinstance(part, EmailMessage)
        out[part.get_content_subtype()] = (part["Content-Transfer-Encoding"], part.get_content().replace("\r\n", "\n"))
    return out


def assert_wire_clean(raw: bytes) -> None:
    raw.decode("ascii")  # the whole message is 7-bit
    assert b"\x00" not in raw
    lines = raw.split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines)  # CRLF only
    assert max(len(line) for line in lines) <= 998


COMPOSER = make_composer(Branding(product_name="Acme", support_email="help@acme.test"))


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("kind", sorted(samples()))
def test_every_rendered_email_round_trips(kind: str, locale: str) -> None:
    rendered = COMPOSER.render(kind, samples()[kind], locale=locale)
    raw = to_bytes(make(rendered.text, rendered.html, subject=rendered.subject))
    assert_wire_clean(raw)
    got = parts(raw)
    assert got["plain"][1] == rendered.text
    assert html_lib.unescape(got["html"][1]) == html_lib.unescape(rendered.html)
    # The HTML is 7bit in every locale (its non-ASCII become references); the text only
    # where it is ASCII.
    assert got["html"][0] == "7bit"
    assert got["plain"][0] == ("7bit" if rendered.text.isascii() else "quoted-printable")
    assert email.message_from_bytes(raw, policy=policy.default)["Subject"] == rendered.subject


def test_an_english_reset_is_readable_as_is() -> None:
    rendered = COMPOSER.render("password_reset", samples()["password_reset"])  # type: ignore[arg-type]
    raw = to_bytes(make(rendered.text, rendered.html))
    assert rendered.text.isascii()
    assert rendered.text.replace("\n", "\r\n").encode() in raw  # no encoding at all
    assert b"=3D" not in raw and b"=\r\n" not in raw  # no quoted-printable anywhere
    # The preheader's invisible padding and the middle dot are references already in the
    # rendered HTML (written back so by the template loader), so the HTML is ASCII as is.
    assert rendered.html.isascii()
    assert "&#8204;" in rendered.html and "&#8204;" in raw.decode("ascii")


def test_non_ascii_html_becomes_character_references() -> None:
    got = parts(to_bytes(make(html="<p>Grüße · “quoted” 😀</p>")))
    assert got["html"] == ("7bit", "<p>Gr&#252;&#223;e &#183; &#8220;quoted&#8221; &#128512;</p>")
    assert html_lib.unescape(got["html"][1]) == "<p>Grüße · “quoted” 😀</p>"


@pytest.mark.parametrize("element", ["style", "STYLE", "script"])
def test_non_ascii_inside_style_or_script_keeps_quoted_printable(element: str) -> None:
    # There a reference would be read literally: the body must arrive byte for byte.
    body = f'<{element} type="text/css">p::before {{ content: "→" }}</{element}><p>Grüße</p>'
    assert parts(to_bytes(make(html=body)))["html"] == ("quoted-printable", body)
    # ASCII in the style and non-ASCII outside it: references are safe.
    other = f"<{element}>p {{ color: red }}</{element}><p>Grüße</p>"
    assert parts(to_bytes(make(html=other)))["html"][0] == "7bit"


def test_line_length_limit_is_998_octets() -> None:
    at_limit, over = "a" * 998, "a" * 999
    assert parts(to_bytes(make(text=at_limit + "\n")))["plain"] == ("7bit", at_limit + "\n")
    raw = to_bytes(make(text=over + "\n"))
    assert parts(raw)["plain"] == ("quoted-printable", over + "\n")
    assert_wire_clean(raw)


@pytest.mark.parametrize(
    "text",
    [
        "From here on\n",  # an mbox would write ">From"
        "Hello\nFrom here on\n",
        "nul\x00byte\n",
        "caf\u00e9\n",  # non-ASCII plain text
    ],
)
def test_text_that_7bit_cannot_carry_is_quoted_printable(text: str) -> None:
    raw = to_bytes(make(text=text))
    assert_wire_clean(raw)
    cte, body = parts(raw)["plain"]
    assert cte == "quoted-printable"
    assert body == text
    assert not raw.startswith(b"From ") and b"\nFrom " not in raw  # nothing for an mbox to mangle


@pytest.mark.parametrize("text", ["one\r\ntwo\r\n", "one\rtwo\r", "one\ntwo\n"])
def test_every_line_end_goes_out_as_crlf(text: str) -> None:
    # A bare CR or LF on the wire is what SMTP smuggling is made of.
    for encoded in (text, text.replace("one", "oné")):  # 7bit and quoted-printable
        raw = to_bytes(make(text=encoded, html=encoded.replace("one", "<p>one</p>")))
        assert_wire_clean(raw)
        got = parts(raw)
        assert got["plain"][1] == encoded.replace("\r\n", "\n").replace("\r", "\n")
        assert html_lib.unescape(got["html"][1]) == got["plain"][1].replace("one", "<p>one</p>")


def test_the_boundary_never_occurs_in_a_body(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = "ab" * 16
    draws = iter([taken, "cd" * 16])
    monkeypatch.setattr(mime.secrets, "token_hex", lambda n: next(draws))
    raw = to_bytes(make(text=f"--=_{taken}\n"))  # a body holding the first draw
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg.get_boundary() == "=_" + "cd" * 16
    assert parts(raw)["plain"][1] == f"--=_{taken}\n"


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
async def test_a_real_reset_email_goes_out_7bit(app: App, backend: MemoryBackend, locale: str) -> None:
    # A real token makes the link ~330 characters, twice on the copy-link line: the
    # template breaks its lines where no whitespace renders, so no line nears 998.
    name = "Ada " + "Lovelace-Byron " * 10  # a long name, on the greeting's line
    await app.service.request_password_reset(
        ResetInput(
            email="alice@example.com",
            user_id="u-1",
            ip="198.51.100.7",
            user_agent=CHROME_UA,
            name=name,
            locale=locale,
        )
    )
    [sent] = backend.sent
    raw = to_bytes(sent)
    assert_wire_clean(raw)
    got = parts(raw)
    assert got["html"][0] == "7bit"
    assert token_from(sent) in got["html"][1] and token_from(sent) in got["plain"][1]
    assert html_lib.unescape(got["html"][1]) == html_lib.unescape(sent.html.replace("\r\n", "\n"))


_ANY_TEXT = st.text(alphabet=st.sampled_from("ab.\r\n\t <>&=éü€😀\x0b\x0c\x85\u2028"), max_size=300)


@settings(max_examples=300, deadline=None)
@given(text=_ANY_TEXT, html=_ANY_TEXT, subject=st.text(max_size=60), name=st.text(max_size=40))
def test_to_bytes_writes_crlf_only_whatever_the_input(text: str, html: str, subject: str, name: str) -> None:
    # The SMTP channel sends `to_bytes` output without re-scanning it for lone CR or LF
    # (`wire_data(crlf_only=True)`); this is the guarantee that rests on. Headers with a
    # CR, LF or NUL are refused, never written.
    try:
        raw = to_bytes(make(text=text, html=html, subject=subject, from_name=name))
    except InvalidInputError:
        assert any(c in value for value in (subject, name) for c in "\r\n\x00")
        return
    assert_wire_clean(raw)
    got = parts(raw)
    assert got["plain"][1] == text.replace("\r\n", "\n").replace("\r", "\n")
    assert wire_data(raw, crlf_only=True) == wire_data(raw)


_ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.datetimes(timezones=st.sampled_from(_ZONES)), st.datetimes()))
def test_the_date_field_is_what_format_datetime_writes(value: datetime) -> None:
    from email.utils import format_datetime

    assert mime._date(value) == format_datetime(value)
