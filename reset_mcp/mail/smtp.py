"""SMTP delivery over aiosmtplib, with a small pool of reused connections.

A new connection per message (greeting, EHLO, maybe STARTTLS and AUTH) costs more than
the message itself, so connections are kept and reused; a connection that errs is
dropped and the next send opens a fresh one. aiosmtplib opens every connection; where
the server offers PIPELINING (nearly all do), `smtp_pipeline.PipelinedChannel` carries
it on and sends each message in two round trips instead of four (see there).

Errors are classified for the dispatcher: a reply code 4xx, a refused connection, a
timeout or a dropped link is transient; a 5xx reply is permanent and carries the
server's text, redacted as the HTTP providers' is (`mail/redact.py`): a server that
quotes the message it refused must not put its link into the outbox, the audit log or a
tool result. A link lost or timed out after the message went out, before the server's
reply, is `MaybeDeliveredError` (transient): the server may have the message, so it is
never resent at once on a fresh connection, on either path; the dispatcher retries it
after the backoff with the same Message-ID.
"""

from __future__ import annotations

import base64
from typing import Protocol

import aiosmtplib
import anyio
from aiosmtplib.typing import Default

from reset_mcp.errors import DeliveryError, MaybeDeliveredError, PermanentDeliveryError, TransientDeliveryError
from reset_mcp.mail.base import DeliveryReceipt, MailOptions, OutgoingEmail
from reset_mcp.mail.mime import to_bytes
from reset_mcp.mail.redact import redact_reason
from reset_mcp.mail.smtp_pipeline import PipelinedChannel


def _classify(exc: Exception, data_written: bool = False) -> TransientDeliveryError | PermanentDeliveryError:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        first = exc.recipients[0]
        return _by_code(first.code, f"recipient refused: {first.code} {first.message}")
    if isinstance(exc, aiosmtplib.SMTPResponseException) and not isinstance(
        exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError
    ):
        return _by_code(exc.code, f"SMTP {exc.code} {exc.message}")
    if data_written:  # no reply to the message: lost or timed out after it went out
        return MaybeDeliveredError(
            f"SMTP connection lost after the message was sent, before the server's reply; it may have "
            f"arrived, so it is retried later with the same Message-ID: {type(exc).__name__}: {exc}"
        )
    return TransientDeliveryError(f"SMTP connection problem: {type(exc).__name__}: {exc}")


def _by_code(code: int, reason: str) -> TransientDeliveryError | PermanentDeliveryError:
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
        pipelining: bool = True,
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
        self._pipelining = pipelining
        self._secrets = _secret_forms(username, password)
        self._idle: list[_Connection] = []
        self._slots = anyio.Semaphore(pool_size)
        self.max_concurrency = pool_size  # the dispatcher never starts more sends than this

    @classmethod
    def from_options(cls, options: MailOptions) -> SmtpBackend:
        return cls(
            options.smtp_host,
            options.smtp_port,
            tls=options.smtp_tls,
            username=options.smtp_username,
            password=options.smtp_password.get_secret_value() if options.smtp_password else None,
            timeout=options.smtp_timeout_seconds,
        )

    def __repr__(self) -> str:  # never show the password
        return f"SmtpBackend({self._options['hostname']}:{self._options['port']})"

    async def _connection(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable:
                return conn
            conn.close()
        return await self._connect()

    async def _connect(self) -> _Connection:
        smtp = _SMTP(**self._options)  # type: ignore[arg-type]
        await smtp.connect()
        if self._pipelining and smtp.is_ehlo_or_helo_needed:
            # connect() greets only when STARTTLS or AUTH needed it; the extensions decide.
            try:
                await smtp.ehlo()
            except aiosmtplib.SMTPHeloError:
                await smtp.helo()  # an SMTP-only server: no extensions, so no pipelining
        if self._pipelining and smtp.supports_extension("pipelining"):
            try:
                return PipelinedChannel.take_over(smtp, self._options["timeout"])  # type: ignore[arg-type]
            except (AttributeError, NotImplementedError):  # a transport that cannot change protocols
                pass
        return _Plain(smtp)

    async def probe(self) -> str:
        """Connect as a send would (TLS or STARTTLS, AUTH when configured), NOOP, QUIT."""
        smtp = aiosmtplib.SMTP(**self._options)  # type: ignore[arg-type]
        try:
            await smtp.connect()
            await smtp.noop()
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            smtp.close()
            raise _classify(exc) from exc
        how = "TLS" if self._options["use_tls"] else "STARTTLS" if self._options["start_tls"] else "no TLS"
        who = f", signed in as {self._options['username']}" if self._options["username"] else ""
        return f"connected to {self._options['hostname']}:{self._options['port']} ({how}{who})"

    async def send(self, email: OutgoingEmail) -> DeliveryReceipt:
        data = to_bytes(email)  # CRLF line ends only: sent as `crlf_only`
        async with self._slots:
            conn: _Connection | None = None
            try:
                conn = await self._connection()
                try:
                    await conn.send(email.from_address, email.to, data, crlf_only=True)
                except aiosmtplib.SMTPServerDisconnected:
                    if conn.data_written:
                        raise  # the server may have the message: a resend could duplicate it
                    # A pooled connection the server closed while idle: one fresh try.
                    conn.close()
                    conn = await self._connect()
                    await conn.send(email.from_address, email.to, data, crlf_only=True)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                data_written = conn is not None and conn.data_written
                if isinstance(conn, PipelinedChannel) and conn.usable:
                    self._idle.append(conn)  # a refusal the channel reset cleanly: keep the link
                elif conn is not None:
                    conn.close()
                raise self._safe(_classify(exc, data_written), email) from exc
            except ValueError as exc:  # an envelope address SMTP cannot carry
                if conn is not None:
                    conn.close()
                raise PermanentDeliveryError(str(exc)) from exc
            except BaseException:  # cancelled (a send cut at its lease's end): the link is in an unknown state
                if conn is not None:
                    conn.close()
                raise
            self._idle.append(conn)
        return DeliveryReceipt(provider_message_id=email.message_id)

    def _safe(self, error: DeliveryError, email: OutgoingEmail) -> DeliveryError:
        """The same error with the server's text redacted and cut (redact.redact_reason)."""
        reason = redact_reason(error.reason, email=email, secrets=self._secrets)
        return type(error)(reason, retry_after=error.retry_after)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.quit()


def _secret_forms(username: str | None, password: str | None) -> tuple[str, ...]:
    """The password as sent, and as AUTH PLAIN and LOGIN carry it (base64), for redaction."""
    if not password:
        return ()
    plain = f"\0{username or ''}\0{password}".encode()
    return (password, base64.b64encode(password.encode()).decode(), base64.b64encode(plain).decode())


class _Connection(Protocol):
    @property
    def data_written(self) -> bool:
        """The current message went out (or its DATA began): a resend could duplicate it."""
        ...

    @property
    def usable(self) -> bool: ...

    async def send(self, sender: str, recipient: str, message: bytes, *, crlf_only: bool = False) -> object: ...

    async def quit(self) -> None: ...

    def close(self) -> None: ...


class _SMTP(aiosmtplib.SMTP):
    """aiosmtplib's client, noting when a message's DATA began: from then on the server
    may have the message, so a lost link must not be followed by a resend at once."""

    data_started = False

    async def data(
        self,
        message: str | bytes,
        /,
        *,
        timeout: float | Default | None = Default.token,  # noqa: ASYNC109 - aiosmtplib's own signature
    ) -> aiosmtplib.SMTPResponse:
        self.data_started = True
        return await super().data(message, timeout=timeout)


class _Plain:
    """A server without PIPELINING: aiosmtplib's own `sendmail`, one command at a time."""

    def __init__(self, smtp: _SMTP) -> None:
        self._smtp = smtp

    @property
    def data_written(self) -> bool:
        # From the DATA command on (the 354 is not seen from here): a link lost after
        # DATA but before 354 is also treated as "may have arrived", which only delays it.
        return self._smtp.data_started

    @property
    def usable(self) -> bool:
        return self._smtp.is_connected

    async def send(self, sender: str, recipient: str, message: bytes, *, crlf_only: bool = False) -> object:
        self._smtp.data_started = False
        return await self._smtp.sendmail(sender, [recipient], message)  # aiosmtplib checks line ends itself

    async def quit(self) -> None:
        try:
            await self._smtp.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self._smtp.close()

    def close(self) -> None:
        self._smtp.close()
