"""A real HTTP account directory on a loopback port, as an app would run it, for tests.

It checks every request's `X-Reset-MCP-Signature` with its own HMAC code (not ours: a
test of our signer against our verifier would prove nothing) and answers from a script:
each request takes the next scripted `Reply` while there are any, then `default`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "directory-secret-0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # bytes as they are, anything else as JSON
    content_type: str = "application/json"
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    body: bytes
    signature: str
    signature_ok: bool
    timestamp: int | None
    account: Any


def signature_ok(header: str, body: bytes, secret: str, tolerance: float = 300) -> tuple[bool, int | None]:
    """The receiver's check, written from the documented format alone."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False, None
    expected = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - timestamp) <= tolerance
    return fresh and hmac.compare_digest(expected, parts.get("v1", "")), timestamp


class Endpoint:
    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self.secret = secret
        self.script: list[Reply] = []
        self.seen: list[Seen] = []
        self.accounts: dict[str, dict[str, Any]] = {}
        self.default: Callable[[Any], Reply] = self._from_accounts

    def _from_accounts(self, account: Any) -> Reply:
        found = self.accounts.get(account) if isinstance(account, str) else None
        return Reply(200, found) if found is not None else Reply(404, {"error": "no such account"})

    def reply_for(self, seen: Seen) -> Reply:
        if not seen.signature_ok:
            return Reply(401, {"error": "bad signature"})
        if self.script:
            return self.script.pop(0)
        return self.default(seen.account)


def _handler(endpoint: Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            header = self.headers.get("X-Reset-MCP-Signature", "")
            ok, timestamp = signature_ok(header, body, endpoint.secret)
            try:
                account = json.loads(body).get("account")
            except (ValueError, AttributeError):
                account = None
            seen = Seen(body, header, ok, timestamp, account)
            endpoint.seen.append(seen)
            reply = endpoint.reply_for(seen)
            if reply.delay:
                time.sleep(reply.delay)
            raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(raw)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                pass

    return Handler


@contextmanager
def directory_endpoint(secret: str = SECRET) -> Iterator[Endpoint]:
    endpoint = Endpoint("", secret)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(endpoint))
    server.daemon_threads = True
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/directory/lookup"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), name="directory-endpoint", daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
