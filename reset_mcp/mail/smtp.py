"""SMTP delivery over aiosmtplib, with a small pool of reused connections.

A new connection per message (greeting, EHLO, maybe STARTTLS and AUTH) costs more than
the message itself, so connections are kept and reused; a connection that errs is
dropped and the next send opens a fresh one.

Errors are classified for the dispatcher: a reply code 4xx, a refused connection, a
timeout or a dropped link is transient; a 5xx reply is permanent and carries the
server's text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiosmtplib
import anyio

from reset_mcp.errors import PermanentDeliveryError, TransientDeliveryError
from reset_mcp.mail import DeliveryReceipt, OutgoingEmail
from reset_mcp.mail.mime import to_bytes

if TYPE_CHECKING:
    from reset_mcp.config import Settings


def _classify(exc: Exception) -> TransientDeliveryError | PermanentDeliveryError:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        first = exc.recipients[0]
        return _by_code(first.code, f"recipient refused: {first.code} {first.message}")
    if isinstance(exc, aiosmtplib.SMTPResponseException) and not isinstance(
        exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError
    ):
        return _by_code(exc.code, f"SMTP {exc.code} {exc.message}")
    return TransientDeliveryError(f"SMTP connection problem: {type(exc).__name__}: {exc}")


def _by_code(code: int, reason: str) -> TransientDeliveryError | PermanentDeliveryError:
    reason = reason[:300]
    if 500 <= code < 600:
        return PermanentDeliveryError(reason)
    return TransientDeliveryError(reason)


class SmtpBackend:
    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        pool_size: int = 4,
        validate_certs: bool = True,
    ) -> None:
        self._options = {
            "hostname": host,
            "port": port,
            "use_tls": tls == "tls",
            "start_tls": tls == "starttls",
            "username": username,
            "password": password,
            "timeout": timeout,
            "validate_certs": validate_certs,
        }
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = anyio.Semaphore(pool_size)

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpBackend:
        return cls(
            settings.smtp_host,
            settings.effective_smtp_port,
            tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout=settings.smtp_timeout_seconds,
        )

    def __repr__(self) -> str:  # never show the password
        return f"SmtpBackend({self._options['hostname']}:{self._options['port']})"

    async def _connection(self) -> aiosmtplib.SMTP:
        while self._idle:
            conn = self._idle.pop()
            if conn.is_connected:
                return conn
        conn = aiosmtplib.SMTP(**self._options)  # type: ignore[arg-type]
        await conn.connect()
        return conn

    async def send(self, email: OutgoingEmail) -> DeliveryReceipt:
        data = to_bytes(email)
        async with self._slots:
            conn: aiosmtplib.SMTP | None = None
            try:
                conn = await self._connection()
                try:
                    await conn.sendmail(email.from_address, [email.to], data)
                except aiosmtplib.SMTPServerDisconnected:
                    # A pooled connection the server closed while idle: one fresh try.
                    conn = aiosmtplib.SMTP(**self._options)  # type: ignore[arg-type]
                    await conn.connect()
                    await conn.sendmail(email.from_address, [email.to], data)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                if conn is not None:
                    conn.close()
                raise _classify(exc) from exc
            self._idle.append(conn)
        return DeliveryReceipt(provider_message_id=email.message_id)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            try:
                await conn.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                conn.close()
