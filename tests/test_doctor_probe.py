"""The sender is checked at start, and `doctor --probe` connects to what the server depends
on: the email backend (a real SMTP server on loopback, a closed port), the database (real
PostgreSQL, and one that is down) and the OAuth issuer (a local issuer), each reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reset_mcp.cli.main import main
from reset_mcp.errors import TransientDeliveryError
from reset_mcp.mail.base import Probe
from reset_mcp.mail.http_providers import ResendBackend, WebhookBackend
from tests.conftest import SECRET
from tests.oauth_issuer import running_issuer
from tests.pg import pg_database_fixture
from tests.smtpd_sink import SmtpSink, free_port

pg_url = pg_database_fixture("pg_url", scope="module")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in ("RESET_MCP_DATABASE_URL", "RESET_MCP_EMAIL_BACKEND", "RESET_MCP_OAUTH_ISSUER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RESET_MCP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RESET_MCP_SECRET", SECRET)
    monkeypatch.setenv("RESET_MCP_FROM_ADDRESS", "security@acme.test")
    yield tmp_path


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["doctor", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def lines_starting(lines: list[str], prefix: str) -> list[str]:
    return [line for line in lines if line.startswith(prefix)]


def test_a_sender_that_is_no_address_is_refused_at_start(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESET_MCP_FROM_ADDRESS", "nope")
    code, _, err = doctor(capsys)
    assert code == 1
    assert "RESET_MCP_FROM_ADDRESS: not a valid email address (An email address must have an @-sign.)" in err
    assert main(["serve"]) == 2  # never reaches the transport
    assert "RESET_MCP_FROM_ADDRESS" in capsys.readouterr().err
    monkeypatch.setenv("RESET_MCP_FROM_ADDRESS", "security@acme.test")
    monkeypatch.setenv("RESET_MCP_OVERSIGHT_EMAIL", "boss at acme")
    assert main(["doctor"]) == 1
    assert "RESET_MCP_OVERSIGHT_EMAIL: not a valid email address" in capsys.readouterr().err


def test_smtp_up_and_down(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RESET_MCP_EMAIL_BACKEND", "smtp")
    monkeypatch.setenv("RESET_MCP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("RESET_MCP_SMTP_TLS", "none")
    with SmtpSink() as sink:
        monkeypatch.setenv("RESET_MCP_SMTP_PORT", str(sink.port))
        code, out, _ = doctor(capsys, "--probe")
        assert code == 0, out
        assert f"probe ok: email backend: smtp: connected to 127.0.0.1:{sink.port} (no TLS)" in out
        assert sink.handler.sessions and sink.raw == []  # greeted, nothing sent
    closed = free_port()
    monkeypatch.setenv("RESET_MCP_SMTP_PORT", str(closed))
    code, out, _ = doctor(capsys, "--probe")
    assert code == 1
    [problem] = lines_starting(out, "PROBLEM: email backend")
    assert problem.startswith("PROBLEM: email backend: SMTP connection problem") and str(closed) in problem
    # Without --probe nothing connects: the closed port is not noticed (what the issue found).
    code, out, _ = doctor(capsys)
    assert code == 0 and not lines_starting(out, "probe ok")


def test_the_embedded_defaults_probe_clean(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = doctor(capsys, "--probe")
    assert code == 0, out
    data = env / "data"
    assert f"probe ok: email backend: outbox: writes .eml files to {data / 'outbox'}" in out
    assert f"probe ok: database: sqlite:///{data / 'reset-mcp.db'} answered" in out


def test_postgresql_up_and_down(
    env: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESET_MCP_DATABASE_URL", pg_url)
    code, out, _ = doctor(capsys, "--probe")
    assert code == 0, out
    assert any(line.startswith("probe ok: database: postgresql://") for line in out)
    monkeypatch.setenv("RESET_MCP_DATABASE_URL", f"postgresql://postgres:pw@127.0.0.1:{free_port()}/none")
    monkeypatch.setenv("RESET_MCP_DB_POOL_TIMEOUT_SECONDS", "2")
    code, out, _ = doctor(capsys, "--probe")
    assert code == 1
    problems = lines_starting(out, "PROBLEM: database")
    assert problems and all(":pw@" not in p for p in problems)


def test_the_oauth_issuer_reached_or_not(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_issuer() as issuer:
        monkeypatch.setenv("RESET_MCP_OAUTH_ISSUER", issuer.url)
        code, out, _ = doctor(capsys, "--probe")
        assert code == 0, out
        assert f"probe ok: OAuth issuer: {issuer.url}: metadata and 1 signing key(s) fetched" in out
    monkeypatch.setenv("RESET_MCP_OAUTH_ISSUER", f"http://127.0.0.1:{free_port()}")
    code, out, _ = doctor(capsys, "--probe")
    assert code == 1 and lines_starting(out, "PROBLEM: OAuth issuer: ")


def test_an_unwritable_data_dir_is_one_problem_not_a_crash(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = env / "a-file"
    blocker.write_text("")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RESET_MCP_DATA_DIR", str(blocker / "data"))
        code, out, err = doctor(capsys, "--probe")
    assert code == 1 and "Traceback" not in err
    assert lines_starting(out, "PROBLEM:") == [
        f"PROBLEM: cannot write to the folder {blocker / 'data'} (Not a directory); "
        "set RESET_MCP_DATA_DIR to a folder you can write"
    ]


async def test_http_api_backends_probe_their_host_without_credentials() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(405)

    backend = ResendBackend("re_secret_key", transport=httpx.MockTransport(answer))
    assert isinstance(backend, Probe)
    said = await backend.probe()
    assert said == "reached https://api.resend.com (HTTP 405); the API key is checked by the first send"
    [request] = seen
    assert request.method == "HEAD" and "authorization" not in request.headers
    await backend.aclose()
    closed = WebhookBackend(f"http://user:pw@127.0.0.1:{free_port()}/hook", "s" * 32)
    with pytest.raises(TransientDeliveryError) as caught:
        await closed.probe()
    assert "cannot reach http://127.0.0.1:" in str(caught.value) and "pw" not in str(caught.value)
    await closed.aclose()


def test_the_account_directory_is_looked_up_and_a_catch_all_is_refused(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.directory_endpoint import SECRET as DIRECTORY_SECRET
    from tests.directory_endpoint import Reply, directory_endpoint

    alice = {"user_id": "u-1", "email": "alice@example.com"}
    with directory_endpoint() as endpoint:
        endpoint.accounts["alice@example.com"] = alice
        monkeypatch.setenv("RESET_MCP_DIRECTORY_URL", endpoint.url)
        monkeypatch.setenv("RESET_MCP_DIRECTORY_SECRET", DIRECTORY_SECRET)
        code, out, _ = doctor(capsys, "--probe-account", "alice@example.com")
        assert code == 0, out
        [ok] = lines_starting(out, "probe ok: account directory: ")
        assert "a made-up account is unknown" in ok and "--probe-account is found as user u-1" in ok
        assert all(seen.signature_ok for seen in endpoint.seen)  # signed, as the server signs
        code, out, _ = doctor(capsys, "--probe-account", "bob@example.com")
        assert code == 1 and lines_starting(out, "PROBLEM: account directory: ")
        # An endpoint that answers every name with one account would send every reset there.
        endpoint.default = lambda account: Reply(200, alice)
        code, out, _ = doctor(capsys, "--probe")
        assert code == 1
        [problem] = lines_starting(out, "PROBLEM: account directory: ")
        assert "answered an account for a made-up name" in problem
    monkeypatch.setenv("RESET_MCP_DIRECTORY_URL", f"http://127.0.0.1:{free_port()}")
    code, out, _ = doctor(capsys, "--probe")
    assert code == 1 and lines_starting(out, "PROBLEM: account directory: ")
