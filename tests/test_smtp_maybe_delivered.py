"""A link lost after the message went out is "may have arrived" on both SMTP paths
(issue 21 item 3): `MaybeDeliveredError`, never a resend at once on a fresh connection.

The scripted server of test_smtp_pipeline drops the link (or falls silent) at a chosen
point; with `EHLO_PLAIN` it offers no PIPELINING, so aiosmtplib's `sendmail` path runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest

from reset_mcp.errors import MaybeDeliveredError, TransientDeliveryError
from reset_mcp.mail.smtp import SmtpBackend
from tests.smtpd_sink import HOST
from tests.test_smtp import make_email
from tests.test_smtp_pipeline import EHLO_PIPELINING, ScriptedServer, accept_all

pytestmark = pytest.mark.anyio

EHLO_PLAIN = b"250-test.example\r\n250 8BITMIME\r\n"
PATHS = pytest.mark.parametrize("ehlo", [EHLO_PIPELINING, EHLO_PLAIN], ids=["pipelining", "no-pipelining"])


def at(point: str, answer: bytes | None) -> Callable[[str, ScriptedServer], bytes | None]:
    """A script that answers `answer` (None: drop the link; b"": say nothing) at `point`."""

    def script(line: str, server: ScriptedServer) -> bytes | None:
        return answer if line.upper().startswith(point) else accept_all(line, server)

    return script


async def send_once(server: ScriptedServer, timeout: float = 2) -> Any:
    backend = SmtpBackend(HOST, server.port, tls="none", timeout=timeout)
    try:
        with anyio.fail_after(10):
            return await backend.send(make_email(0))
    finally:
        await backend.aclose()


@PATHS
async def test_a_drop_after_the_message_is_maybe_delivered_and_not_resent(ehlo: bytes) -> None:
    async with ScriptedServer(at("<MESSAGE>", None), ehlo=ehlo) as server:
        with pytest.raises(MaybeDeliveredError, match="may have arrived") as caught:
            await send_once(server)
    assert caught.value.maybe_delivered and isinstance(caught.value, TransientDeliveryError)
    assert server.connections == 1 and len(server.messages) == 1  # no second copy on a fresh link


@PATHS
async def test_silence_after_the_message_is_maybe_delivered(ehlo: bytes) -> None:
    async with ScriptedServer(at("<MESSAGE>", b""), ehlo=ehlo) as server:
        with pytest.raises(MaybeDeliveredError, match=r"(?i)timeout|timed out"):
            await send_once(server, timeout=0.3)
    assert server.connections == 1 and len(server.messages) == 1


@PATHS
@pytest.mark.parametrize("point", ["MAIL", "RCPT"])
async def test_a_drop_before_the_data_is_an_ordinary_transient_failure(ehlo: bytes, point: str) -> None:
    async with ScriptedServer(at(point, None), ehlo=ehlo) as server:
        with pytest.raises(TransientDeliveryError) as caught:
            await send_once(server)
    assert not caught.value.maybe_delivered and not isinstance(caught.value, MaybeDeliveredError)
    assert server.messages == []


@PATHS
async def test_a_refusal_of_the_message_is_a_definite_answer(ehlo: bytes) -> None:
    async with ScriptedServer(at("<MESSAGE>", b"451 4.3.0 try later\r\n"), ehlo=ehlo) as server:
        with pytest.raises(TransientDeliveryError, match="451") as caught:
            await send_once(server)
    assert not caught.value.maybe_delivered


async def test_an_idle_connection_the_server_closed_is_still_replaced_once_without_pipelining() -> None:
    async with ScriptedServer(accept_all, ehlo=EHLO_PLAIN) as server:
        backend = SmtpBackend(HOST, server.port, tls="none", timeout=2)
        await backend.send(make_email(0))
        [conn] = backend._idle
        conn._smtp.transport.close()  # as if the server had timed the idle link out
        await anyio.sleep(0.05)
        await backend.send(make_email(1))  # MAIL fails on the dead link: one fresh try, no error
        await backend.aclose()
    assert server.connections == 2 and len(server.messages) == 2
