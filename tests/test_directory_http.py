"""The HTTP account directory against a real endpoint on loopback (tests/directory_endpoint.py)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from reset_mcp.config import load_settings
from reset_mcp.directory import Account, open_directory
from reset_mcp.directory.http import HttpDirectory
from reset_mcp.errors import ConfigError, DirectoryUnavailableError, InvalidInputError
from tests.directory_endpoint import SECRET, Endpoint, Reply, directory_endpoint

ALICE = {"user_id": "u-1", "email": "Alice@Example.COM", "name": "Alice Liddell", "locale": "de-AT"}


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    with directory_endpoint() as ep:
        ep.accounts["alice@example.com"] = ALICE
        ep.accounts["u-1"] = ALICE
        yield ep


@pytest.fixture
async def directory(endpoint: Endpoint) -> AsyncIterator[HttpDirectory]:
    d = await open_directory(url=endpoint.url, secret=SECRET, lookup_timeout=2.0)
    assert isinstance(d, HttpDirectory)
    try:
        yield d
    finally:
        await d.aclose()


async def test_found_by_email_or_user_id_with_a_signature_the_app_accepts(
    directory: HttpDirectory, endpoint: Endpoint
) -> None:
    for account in ("alice@example.com", "u-1"):
        found = await directory.lookup(account)
        assert found == Account("u-1", "alice@example.com", "Alice Liddell", "de-AT", None)
    assert [s.signature_ok for s in endpoint.seen] == [True, True]
    # The body is exactly {"account": ...}: what the app signs and parses.
    assert [json.loads(s.body) for s in endpoint.seen] == [{"account": "alice@example.com"}, {"account": "u-1"}]
    assert all(abs(time.time() - (s.timestamp or 0)) < 60 for s in endpoint.seen)


async def test_an_unknown_account_is_none(directory: HttpDirectory, endpoint: Endpoint) -> None:
    assert await directory.lookup("mallory@example.net") is None
    assert len(endpoint.seen) == 1  # a 404 is an answer, not a failure: no retry


async def test_nothing_is_cached_a_changed_address_wins_at_once(directory: HttpDirectory, endpoint: Endpoint) -> None:
    assert await directory.lookup("u-1") is not None
    endpoint.accounts["u-1"] = {**ALICE, "email": "alice@new.example"}
    assert (await directory.lookup("u-1")).email == "alice@new.example"  # type: ignore[union-attr]
    assert await directory.lookup("nobody") is None
    endpoint.accounts["nobody"] = {"user_id": "u-9", "email": "nobody@example.com"}
    assert await directory.lookup("nobody") is not None  # a miss is not remembered either


async def test_a_5xx_is_retried_once_then_the_answer_is_used(directory: HttpDirectory, endpoint: Endpoint) -> None:
    endpoint.script = [Reply(503, {"error": "restarting"})]
    assert (await directory.lookup("u-1")) is not None
    assert len(endpoint.seen) == 2 and all(s.signature_ok for s in endpoint.seen)


async def test_two_5xx_are_unavailable_after_exactly_one_retry(directory: HttpDirectory, endpoint: Endpoint) -> None:
    endpoint.script = [Reply(500), Reply(502), Reply(200, ALICE)]
    with pytest.raises(DirectoryUnavailableError, match=r"unavailable: HTTP 502 from the directory"):
        await directory.lookup("u-1")
    assert len(endpoint.seen) == 2


async def test_a_slow_directory_is_unavailable_within_the_timeout(endpoint: Endpoint) -> None:
    endpoint.script = [Reply(200, ALICE, delay=3), Reply(200, ALICE, delay=3)]
    directory = HttpDirectory(endpoint.url, SECRET, timeout=0.6)
    start = time.monotonic()
    with pytest.raises(DirectoryUnavailableError, match=r"timed out|no answer within"):
        await directory.lookup("u-1")
    elapsed = time.monotonic() - start
    await directory.aclose()
    assert elapsed < 1.5, elapsed
    assert len(endpoint.seen) == 2  # the first attempt timed out at half the budget; one retry


async def test_a_timeout_then_a_quick_answer_succeeds(endpoint: Endpoint) -> None:
    endpoint.script = [Reply(200, ALICE, delay=2)]
    directory = HttpDirectory(endpoint.url, SECRET, timeout=1.0)
    assert await directory.lookup("u-1") is not None
    await directory.aclose()


async def test_nothing_listening_is_unavailable_after_one_retry() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    directory = HttpDirectory(f"http://127.0.0.1:{port}/lookup", SECRET, timeout=2)
    with pytest.raises(DirectoryUnavailableError, match=r"cannot reach the directory \(ConnectError\)"):
        await directory.lookup("u-1")
    await directory.aclose()


async def test_a_wrong_secret_is_refused_by_the_app_and_named(endpoint: Endpoint) -> None:
    directory = HttpDirectory(endpoint.url, "another-secret-0123456789abcdefghijklmnop", timeout=2)
    with pytest.raises(DirectoryUnavailableError, match=r"HTTP 401.*RESET_MCP_DIRECTORY_SECRET"):
        await directory.lookup("u-1")
    assert [s.signature_ok for s in endpoint.seen] == [False]
    await directory.aclose()


MALFORMED = [
    (Reply(200, b"{not json"), "not valid JSON"),
    (Reply(200, ["u-1", "alice@example.com"]), "must be a JSON object"),
    (Reply(200, {"user_id": "u-1"}), "lacks 'email'"),
    (Reply(200, {"email": "alice@example.com"}), "lacks 'user_id'"),
    (Reply(200, {"user_id": 4.2, "email": "alice@example.com"}), "lacks 'user_id'"),
    (Reply(200, {"user_id": True, "email": "alice@example.com"}), "lacks 'user_id'"),
    (Reply(200, {"user_id": "u-1\nBcc: x", "email": "alice@example.com"}), "'user_id' must be one line"),
    (Reply(200, {"user_id": "", "email": "alice@example.com"}), "'user_id' must be one line"),
    (Reply(200, {"user_id": "u-1", "email": "alice@example.com\r\nBcc: evil@example.net"}), "'email' is not a valid"),
    (Reply(200, {"user_id": "u-1", "email": "not an address"}), "'email' is not a valid"),
    (Reply(200, {"user_id": "u-1", "email": "alice@example.com", "name": ["A"]}), "'name' must be a string"),
    (Reply(200, ALICE, content_type="text/html"), "text/html, not application/json"),
    (Reply(200, b"{" + b" " * 70_000 + b"}"), "larger than 64 KiB"),
    (Reply(302, b"", headers={"Location": "https://elsewhere.example/"}), "HTTP 302.*redirects are not followed"),
    (Reply(429, {"error": "slow down"}), r"refused the lookup \(HTTP 429\)"),
]


@pytest.mark.parametrize(("reply", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
async def test_an_unexpected_answer_is_one_clear_line(
    directory: HttpDirectory, endpoint: Endpoint, reply: Reply, message: str
) -> None:
    endpoint.script = [reply]
    with pytest.raises(DirectoryUnavailableError, match=message) as caught:
        await directory.lookup("alice@example.com")
    text = str(caught.value)
    assert "\n" not in text and "Traceback" not in text
    assert "alice@example.com" not in text and SECRET not in text  # neither the account nor the secret
    assert len(endpoint.seen) == 1  # an answer in a wrong shape is not retried


async def test_optional_fields_that_fail_their_check_are_dropped(directory: HttpDirectory, endpoint: Endpoint) -> None:
    endpoint.script = [
        Reply(200, {"user_id": "u-1", "email": "a@example.com", "name": "x" * 201, "locale": "not a tag!",
                    "timezone": "../../etc/passwd", "extra": {"ignored": True}})
    ]  # fmt: skip
    assert await directory.lookup("u-1") == Account("u-1", "a@example.com")


async def test_a_numeric_user_id_is_read_as_its_decimal_text(directory: HttpDirectory, endpoint: Endpoint) -> None:
    endpoint.script = [Reply(200, {"user_id": 42, "email": "a@example.com"})]
    assert await directory.lookup("a@example.com") == Account("42", "a@example.com")


@pytest.mark.parametrize("account", ["", "   ", "a\nb", "x" * 321])
async def test_a_bad_account_is_refused_before_any_request(
    directory: HttpDirectory, endpoint: Endpoint, account: str
) -> None:
    with pytest.raises(InvalidInputError, match="account"):
        await directory.lookup(account)
    assert endpoint.seen == []


async def test_the_factory_refuses_bad_options_at_start() -> None:
    assert await open_directory() is None
    with pytest.raises(ConfigError, match="https"):
        await open_directory(url="http://directory.example/lookup", secret=SECRET)
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        await open_directory(url="https://directory.example/lookup", secret="short")
    with pytest.raises(ConfigError, match="not both"):
        await open_directory(url="https://directory.example/lookup", secret=SECRET, sql="SELECT 1")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"directory_url": "http://app.example/lookup", "directory_secret": SECRET}, "DIRECTORY_URL: must be an https"),
        ({"directory_url": "https://app.example/lookup"}, "DIRECTORY_SECRET is required"),
        ({"directory_url": "https://app.example/lookup", "directory_secret": "short"}, "at least 32 bytes"),
        ({"directory_sql": "SELECT 1"}, "go together"),
        ({"directory_database_url": "mysql://app"}, "must start with sqlite:/// or postgresql://"),
        (
            {"directory_url": "https://a.example/", "directory_secret": SECRET, "directory_sql": "SELECT 1",
             "directory_database_url": "sqlite:///x.db"},
            "not both",
        ),
    ],
)  # fmt: skip
def test_settings_refuse_a_half_configured_directory(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(**env)
    assert SECRET not in str(caught.value)


def test_the_directory_database_password_is_never_shown_by_doctor() -> None:
    from reset_mcp.cli.doctor import mask

    s = load_settings(directory_sql="SELECT 1", directory_database_url="postgresql://app:hunter2@db/app")
    assert "hunter2" not in mask("directory_database_url", s.directory_database_url)
    assert "hunter2" not in repr(s)


def test_settings_accept_a_loopback_directory_and_default_to_not_trusting_the_caller() -> None:
    s = load_settings(directory_url="http://127.0.0.1:9000/lookup", directory_secret=SECRET)
    assert s.directory_url == "http://127.0.0.1:9000/lookup" and s.trust_caller_recipient is False
    assert s.directory_timeout_seconds == 5.0
