"""Turn an `OutgoingEmail` into RFC 5322 bytes (multipart/alternative, text then HTML).

The message has one fixed shape, so it is written directly rather than through the
email package's generator, which cost about 2 ms a message here (a write per line, a
regex compiled per boundary, header folding by the general algorithm): most of a
reset's CPU time. What it still borrows from the stdlib: RFC 2047 encoded words for
non-ASCII headers (`email.header`), `formataddr`, `format_datetime`, and
`binascii.b2a_qp` (C) for the quoted-printable bodies (readable in a raw .eml, safe
for long lines). Lines end in CRLF. The boundary starts with "=_", which cannot occur
in quoted-printable text (a literal "=" is always encoded as "=3D").

A header value with CR, LF or NUL is refused here, whatever the composer did, so no
caller-controlled text can add a header; names must be plain header tokens.
"""

from __future__ import annotations

import binascii
import email
import re
import secrets
from email.header import Header
from email.message import Message
from email.utils import format_datetime, formataddr

from reset_mcp.errors import InvalidInputError
from reset_mcp.mail import OutgoingEmail

_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 field name: printable ASCII except ":"
_FOLD_AT = 78


def _check(name: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise InvalidInputError(f"header {name} contains a line break")
    return value


def _field(name: str, value: str) -> str:
    """One header line (folded if long); non-ASCII values become RFC 2047 encoded words."""
    if not _NAME.fullmatch(name):
        raise InvalidInputError(f"header name {name!r} is not valid")
    _check(name, value)
    if not value.isascii():
        return f"{name}: " + Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
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


def _part(subtype: str, body: str, boundary: str) -> bytes:
    encoded = binascii.b2a_qp(body.replace("\r\n", "\n").encode("utf-8"), istext=True).replace(b"\n", b"\r\n")
    head = (
        f"--{boundary}\r\n"
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    return head.encode("ascii") + encoded + b"\r\n"


def to_bytes(email_: OutgoingEmail) -> bytes:
    boundary = "=_" + secrets.token_hex(16)
    sender = formataddr((_check("From", email_.from_name), _check("From", email_.from_address)), "utf-8")
    fields = [
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "MIME-Version: 1.0",
        _field("Message-ID", email_.message_id),
        _field("Date", format_datetime(email_.date)),
        _field("From", sender),
        _field("To", email_.to),
        _field("Subject", email_.subject),
    ]
    fields += [_field(name, value) for name, value in email_.headers.items()]
    head = ("\r\n".join(fields) + "\r\n\r\n").encode("ascii")
    return b"".join(
        (
            head,
            _part("plain", email_.text, boundary),
            _part("html", email_.html, boundary),
            f"--{boundary}--\r\n".encode("ascii"),
        )
    )


def build_message(email_: OutgoingEmail) -> Message:
    """The same message as an `email.message.Message` (for inspection; sending uses `to_bytes`)."""
    return email.message_from_bytes(to_bytes(email_))
