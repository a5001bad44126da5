"""Turn an `OutgoingEmail` into RFC 5322 bytes (multipart/alternative, text then HTML).

Built with the stdlib's compat32 MIME classes: on this workload they cost about a
third of `EmailMessage` with the default policy, and we set every header ourselves.
A header value with CR or LF is refused here, whatever the composer did, so no
caller-controlled text can add a header.
"""

from __future__ import annotations

from email.charset import QP, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime, formataddr

from reset_mcp.errors import InvalidInputError
from reset_mcp.mail import OutgoingEmail

_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP  # readable in a raw .eml, safe for long lines


def _check(name: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise InvalidInputError(f"header {name} contains a line break")
    return value


def _part(subtype: str, body: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part.set_payload(body, charset=_UTF8_QP)
    return part


def _header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


def build_message(email: OutgoingEmail) -> MIMEMultipart:
    msg = MIMEMultipart("alternative")
    msg["Message-ID"] = _check("Message-ID", email.message_id)
    msg["Date"] = format_datetime(email.date)
    msg["From"] = formataddr((_check("From", email.from_name), _check("From", email.from_address)), "utf-8")
    msg["To"] = _check("To", email.to)
    msg["Subject"] = _header(_check("Subject", email.subject))  # type: ignore[assignment]
    for name, value in email.headers.items():
        msg[_check("header name", name)] = _header(_check(name, value))  # type: ignore[assignment]
    msg.attach(_part("plain", email.text))
    msg.attach(_part("html", email.html))
    return msg


def to_bytes(email: OutgoingEmail) -> bytes:
    return build_message(email).as_bytes()
