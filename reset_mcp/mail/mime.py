"""Turn an `OutgoingEmail` into RFC 5322 bytes (multipart/alternative, text then HTML).

The message has one fixed shape, so it is written directly rather than through the
email package's generator, which cost most of a reset's CPU time (a write per line, a
regex compiled per boundary, header folding by the general algorithm; bench/README.md).
What it still borrows from the stdlib: RFC 2047 encoded words for non-ASCII headers
(`email.header`), `formataddr`, `format_datetime`, and `binascii.b2a_qp` (C) for
quoted-printable. Lines end in CRLF.

Each body goes out as `7bit` when it can (RFC 2045 2.7: ASCII, no NUL or bare CR,
lines of at most 998 octets), else as quoted-printable. An HTML body is made ASCII
first by writing its non-ASCII characters as numeric character references (`&#183;`
for a middle dot), which a browser or mail client reads as the same character, except
inside `<style>` and `<script>`, whose text is not decoded: there a non-ASCII
character keeps the body quoted-printable. 7bit costs nothing to produce and is the
easiest form to read in a raw .eml; quoted-printable of a reset's HTML was a
noticeable share of a reset's CPU. A line starting "From " is sent
quoted-printable with its F written "=46", so an mbox on the way cannot turn it into
">From ". The boundary is chosen after the bodies are final and is checked not to
occur in them.

A header value with CR, LF or NUL is refused here, whatever the composer did, so no
caller-controlled text can add a header; names must be plain header tokens.
"""

from __future__ import annotations

import binascii
import email
import re
import secrets
from datetime import UTC, datetime
from email.header import Header
from email.message import Message
from email.utils import format_datetime, formataddr
from functools import lru_cache

from reset_mcp.errors import InvalidInputError
from reset_mcp.mail.base import OutgoingEmail

_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 field name: printable ASCII except ":"
_FOLD_AT = 78


def _check(name: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise InvalidInputError(f"header {name} contains a line break")
    return value


@lru_cache(maxsize=256)
def _encoded_words(name: str, value: str) -> str:
    # email.header costs ~70 us a value; the non-ASCII values are mostly the few
    # translated subjects and the sender's name, so they are cached.
    return f"{name}: " + Header(value, "utf-8", header_name=name).encode(linesep="\r\n")


def _field(name: str, value: str) -> str:
    """One header line (folded if long); non-ASCII values become RFC 2047 encoded words."""
    if not _NAME.fullmatch(name):
        raise InvalidInputError(f"header name {name!r} is not valid")
    _check(name, value)
    if not value.isascii():
        return _encoded_words(name, value)
    line = f"{name}: {value}"
    if len(line) <= _FOLD_AT or " " not in value:
        return line
    # Fold at spaces (ASCII only here), continuation lines start with the space.
    out, current = [], f"{name}:"
    for word in value.split(" "):
        if len(current) + 1 + len(word) > _FOLD_AT and current.strip() and current != f"{name}:":
            out.append(current)
            current = ""
        current += " " + word
    out.append(current)
    return "\r\n".join(out)


_MAX_LINE = 998  # RFC 5322 2.1.1, CRLF not counted
_RAW_OPEN = re.compile(r"<(style|script)\b", re.IGNORECASE)
_RAW_CLOSE = {name: re.compile(rf"</{name}\s*>", re.IGNORECASE) for name in ("style", "script")}


def _html_as_ascii(html: str) -> str | None:
    """The same HTML in ASCII (non-ASCII as `&#N;`), or None when a raw-text element has some."""
    if html.isascii():
        return html
    for start in _RAW_OPEN.finditer(html):
        end = _RAW_CLOSE[start.group(1).lower()].search(html, start.end())
        if not html[start.start() : end.end() if end else len(html)].isascii():
            return None  # `&#N;` inside <style> or <script> would be read literally
    return html.encode("ascii", "xmlcharrefreplace").decode("ascii")


def _needs_qp(data: bytes) -> bool:
    # NUL, or a line an mbox would mangle.
    return b"\x00" in data or data.startswith(b"From ") or b"\nFrom " in data


def _encode(subtype: str, body: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, the body's bytes with CRLF line ends)."""
    # Any CR, LF or CRLF is a line end, as the stdlib's generator reads them: a bare CR
    # on the wire is what SMTP smuggling is made of.
    if "\r" in body:  # one scan when there is none (the usual case) instead of two copies
        body = body.replace("\r\n", "\n").replace("\r", "\n")
    plain = _html_as_ascii(body) if subtype == "html" else (body if body.isascii() else None)
    if plain is not None:
        data = plain.encode("ascii")
        lines = data.split(b"\n")
        if max(map(len, lines)) <= _MAX_LINE and not _needs_qp(data):
            return "7bit", b"\r\n".join(lines)
    encoded = binascii.b2a_qp(body.encode("utf-8"), istext=True)
    # b2a_qp leaves "From " alone; "=46" is the same F to a reader and nothing to an mbox.
    if encoded.startswith(b"From "):
        encoded = b"=46" + encoded[1:]
    encoded = encoded.replace(b"\nFrom ", b"\n=46rom ").replace(b"\n", b"\r\n")
    return "quoted-printable", encoded


def _part(subtype: str, cte: str, data: bytes, boundary: str) -> bytes:
    head = f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n'
    return head.encode("ascii") + data + b"\r\n"


def _boundary(*bodies: bytes) -> str:
    # 128 random bits, drawn after the bodies are final: a body cannot be written to
    # contain it, and a chance match is checked anyway.
    while True:
        boundary = "=_" + secrets.token_hex(16)
        if not any(boundary.encode("ascii") in body for body in bodies):
            return boundary


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _date(value: datetime) -> str:
    """The Date field as `email.utils.format_datetime` writes it, in a fifth of the time
    for the usual case, a UTC datetime (its general path builds a time tuple and calls
    strftime); anything else goes to it."""
    if value.tzinfo is not UTC:
        return format_datetime(value)
    return (
        f"{_DAYS[value.weekday()]}, {value.day:02d} {_MONTHS[value.month - 1]} {value.year:04d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} +0000"
    )


def to_bytes(email_: OutgoingEmail) -> bytes:
    text_cte, text = _encode("plain", email_.text)
    html_cte, html = _encode("html", email_.html)
    boundary = _boundary(text, html)
    sender = formataddr((_check("From", email_.from_name), _check("From", email_.from_address)), "utf-8")
    fields = [
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "MIME-Version: 1.0",
        _field("Message-ID", email_.message_id),
        _field("Date", _date(email_.date)),
        _field("From", sender),
        _field("To", email_.to),
        _field("Subject", email_.subject),
    ]
    fields += [_field(name, value) for name, value in email_.headers.items()]
    head = ("\r\n".join(fields) + "\r\n\r\n").encode("ascii")
    return b"".join(
        (
            head,
            _part("plain", text_cte, text, boundary),
            _part("html", html_cte, html, boundary),
            f"--{boundary}--\r\n".encode("ascii"),
        )
    )


def build_message(email_: OutgoingEmail) -> Message:
    """The same message as an `email.message.Message` (for inspection; sending uses `to_bytes`)."""
    return email.message_from_bytes(to_bytes(email_))
