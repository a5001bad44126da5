"""The account directory as your app's own HTTP endpoint (RESET_MCP_DIRECTORY_URL).

    POST <url>   {"account": "<as the person gave it>"}
    X-Reset-MCP-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">   (the webhook's)

    200 {"user_id": "...", "email": "...", "name"?, "locale"?, "timezone"?}   found
    404                                                                      no such account

The endpoint verifies the signature as the webhook's receiver does (`verify_webhook_signature`)
and must answer 404 only for "no such account": a wrong path that 404s everything would
quietly make every account unknown. Anything else (a transport error, a timeout, 5xx, another
status, a body that is not the JSON object above) is `DirectoryUnavailableError`. A lookup
is read-only, so a transport error or a 5xx is retried once; the whole lookup, retry
included, stays within `timeout` seconds, half of it for each attempt.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx

from reset_mcp.clock import Clock, SystemClock
from reset_mcp.config import MIN_SECRET_BYTES
from reset_mcp.directory.account import Account, check_account
from reset_mcp.directory.answer import account_from
from reset_mcp.errors import ConfigError, DirectoryUnavailableError
from reset_mcp.mail.http_base import check_url
from reset_mcp.mail.providers import SIGNATURE_HEADER, sign_webhook

log = logging.getLogger("reset_mcp.directory")

MAX_ANSWER_BYTES = 64 * 1024  # an account is a few hundred bytes; more is not an answer
RETRY_PAUSE = 0.05  # seconds: long enough to get past a restarting worker, short for the caller


class _Retry(Exception):
    """One attempt failed in a way a second attempt may not."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _display(url: str) -> str:
    # No userinfo, query or fragment: any of them may hold a credential.
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class HttpDirectory:
    """`Directory` over a signed POST to the app (see the module docstring)."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout: float = 5.0,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = check_url(url, "RESET_MCP_DIRECTORY_URL")
        if len((secret or "").encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"RESET_MCP_DIRECTORY_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        if not 0 < timeout <= 60:
            raise ConfigError("RESET_MCP_DIRECTORY_TIMEOUT_SECONDS must be above 0 and at most 60")
        self._secret = secret
        self._timeout = timeout
        self._clock = clock or SystemClock()
        self.describe = f"http directory {_display(self.url)}"
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout / 2),
            follow_redirects=False,  # a redirect could carry the signed request elsewhere
            transport=transport,
            headers={"User-Agent": "reset-mcp directory", "Accept": "application/json"},
        )

    def __repr__(self) -> str:
        return f"<HttpDirectory {_display(self.url)}>"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def lookup(self, account: str) -> Account | None:
        account = check_account(account)
        body = json.dumps({"account": account}, separators=(",", ":"), ensure_ascii=False).encode()
        message = ""
        try:
            with anyio.fail_after(self._timeout):
                for attempt in (1, 2):
                    try:
                        return await self._attempt(body)
                    except _Retry as exc:
                        message = exc.message
                        if attempt == 1:
                            log.info("%s: %s; retrying once", self.describe, message)
                            await anyio.sleep(RETRY_PAUSE)
        except TimeoutError:
            message = f"no answer within {self._timeout:g} seconds"
        raise DirectoryUnavailableError(f"account directory unavailable: {message}")

    async def _attempt(self, body: bytes) -> Account | None:
        # Signed per attempt: the retry carries a fresh timestamp.
        timestamp = int(self._clock.now().timestamp())
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign_webhook(body, self._secret, timestamp)}
        try:
            async with self._http.stream("POST", self.url, content=body, headers=headers) as response:
                status = response.status_code
                if status == 404:
                    return None
                if status >= 500:
                    raise _Retry(f"HTTP {status} from the directory")
                if status != 200:
                    raise DirectoryUnavailableError(self._refused(status))
                media = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
                if media != "application/json" and not media.endswith("+json"):
                    raise DirectoryUnavailableError(
                        f"account directory answered 200 with {media or 'no content type'}, not application/json"
                    )
                raw = await self._read(response)
        except httpx.TimeoutException:
            raise _Retry("the directory timed out") from None
        except httpx.TransportError as exc:
            raise _Retry(f"cannot reach the directory ({type(exc).__name__})") from None
        return account_from(self._parse(raw), "account directory")

    @staticmethod
    async def _read(response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise DirectoryUnavailableError(
                    f"account directory answer is larger than {MAX_ANSWER_BYTES // 1024} KiB"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _parse(raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise DirectoryUnavailableError("account directory answer is not valid JSON") from None

    def _refused(self, status: int) -> str:
        hint = {
            401: "; check RESET_MCP_DIRECTORY_SECRET and that the clocks agree",
            403: "; check RESET_MCP_DIRECTORY_SECRET and that the clocks agree",
        }.get(status, "")
        if 300 <= status < 400:
            hint = "; redirects are not followed, set the final URL"
        return f"account directory refused the lookup (HTTP {status}){hint}"
