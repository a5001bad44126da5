"""`confirm` mode (issue 20, part 3): the agent's client is pointed, by URL-mode elicitation, at
this server's approvals page, where only a person signed in with an `approve` key decides.

An auto-accepting client gets nothing sent (accept means "I agreed to open the page"); a
decline withdraws the held send; the URL names the approval and nothing else. In process in
both protocol eras, and over streamable HTTP against a real server with its admin page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import anyio
import mcp_types
import pytest

from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.config import Settings
from reset_mcp.deps import Caller
from reset_mcp.mail.memory import MemoryBackend
from tests.conftest import client_for, reset_args
from tests.httpserver import RunningServer, mcp_client, running_server
from tests.test_admin import Overseer
from tests.test_http import make_settings

ERAS = ["legacy", "auto"]  # the handshake era (2025-11-25) and the modern one (2026-07-28)
APPROVER = Caller("key:overseer", frozenset({"approve"}), name="overseer")


class Recorder:
    """An elicitation callback that answers `action` and remembers what it was asked."""

    def __init__(self, action: str) -> None:
        self.action = action
        self.asked: list[Any] = []

    async def __call__(self, context: Any, params: Any) -> mcp_types.ElicitResult:
        self.asked.append(params)
        return mcp_types.ElicitResult(action=self.action)  # type: ignore[arg-type]


def client_kwargs(era: str, recorder: Recorder | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"mode": era} if era == "legacy" else {}
    if recorder is not None:
        kwargs["elicitation_callback"] = recorder
    return kwargs


async def audit_actions(app: App) -> list[tuple[str, dict[str, Any]]]:
    async with app.store.reading() as tx:
        return [(e.action, e.detail) for e in await tx.list_audit(limit=1000)]


@pytest.fixture
def confirm_settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(oversight_mode="confirm", public_url="https://reset.example.com")


@pytest.mark.parametrize("era", ERAS)
async def test_an_auto_accepting_client_gets_nothing_sent_and_a_person_decides_on_the_page(
    era: str, confirm_settings: Settings, clock: FakeClock, backend: MemoryBackend
) -> None:
    recorder = Recorder("accept")
    async with build_app(confirm_settings, clock=clock, backend=backend) as app:
        async with client_for(app, **client_kwargs(era, recorder)) as client:
            result = await client.call_tool("request_password_reset", reset_args())
        assert not result.is_error, result.content
        out = result.structured_content
        assert out["status"] == "pending_approval" and backend.sent == []  # type: ignore[index]
        [asked] = recorder.asked
        assert isinstance(asked, mcp_types.ElicitRequestURLParams) and asked.mode == "url"
        # Our page for that approval, and nothing else: no token, no signature, no address.
        assert asked.url == f"https://reset.example.com/admin/approvals/{out['approval_id']}"  # type: ignore[index]
        assert urlsplit(asked.url).query == "" and "alice" not in asked.url
        assert "approve key" in asked.message
        assert asked.elicitation_id == (out["approval_id"] if era == "legacy" else None)  # type: ignore[index]
        async with app.store.reading() as tx:
            assert len(await tx.list_sends(None, 100)) == 1  # the second round (modern era) sent nothing more
        offered = [d for a, d in await audit_actions(app) if a == "approvals_page_offered"]
        assert offered == [{"approval_id": out["approval_id"], "client_answer": "accept"}]  # type: ignore[index]
        assert (await app.service.approvals.list_pending()).count == 1
        decision = await app.service.approvals.approve(out["approval_id"], APPROVER)  # type: ignore[index]
        assert decision.delivery is not None and decision.delivery.status == "sent"
        assert [m.kind for m in backend.sent] == ["password_reset"]


@pytest.mark.parametrize("era", ERAS)
async def test_a_declining_client_withdraws_its_own_held_send(
    era: str, confirm_settings: Settings, clock: FakeClock, backend: MemoryBackend
) -> None:
    async with build_app(confirm_settings, clock=clock, backend=backend) as app:
        async with client_for(app, **client_kwargs(era, Recorder("decline"))) as client:
            out = (await client.call_tool("request_password_reset", reset_args())).structured_content
        assert out["status"] == "rejected" and "declined" in out["reason"]  # type: ignore[index]
        approval = await app.service.approvals.get(out["approval_id"])  # type: ignore[index]
        assert approval.status == "rejected" and approval.decided_by == "stdio"
        assert "approval_withdrawn" in [a for a, _ in await audit_actions(app)]
        assert backend.sent == []


@pytest.mark.parametrize("era", ERAS)
async def test_a_client_without_url_elicitation_is_not_asked_and_the_send_waits(
    era: str, confirm_settings: Settings, clock: FakeClock, backend: MemoryBackend
) -> None:
    async with build_app(confirm_settings, clock=clock, backend=backend) as app:
        async with client_for(app, **client_kwargs(era, None)) as client:
            out = (await client.call_tool("request_password_reset", reset_args())).structured_content
        assert out["status"] == "pending_approval" and backend.sent == []  # type: ignore[index]
        assert "approvals_page_offered" not in [a for a, _ in await audit_actions(app)]
        assert (await app.service.approvals.list_pending()).count == 1


# --------------------------------------------------------------------------- over HTTP, with the page


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = make_settings(tmp_path_factory.mktemp("confirm"), oversight_mode="confirm")
    keys = {"agent": ["send"], "admin": ["approve"], "dual": ["send", "approve"]}
    with running_server(settings, keys) as server:
        yield server


def ask_over_http(srv: RunningServer, key: str, email: str, recorder: Recorder) -> dict[str, Any]:
    async def ask() -> dict[str, Any]:
        async with mcp_client(srv.url, srv.key(key), mode="legacy", elicitation_callback=recorder) as agent:
            result = await agent.call_tool("request_password_reset", reset_args(email=email, user_id=email))
            assert not result.is_error, result.content
            return dict(result.structured_content or {})

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, ask).result()


def eml_for(srv: RunningServer, email: str) -> list[str]:
    return [p.name for p in srv.settings.effective_outbox_dir.glob("*password_reset*.eml") if email in p.read_text()]


def test_over_streamable_http_the_page_asks_for_an_approve_key_and_refuses_the_requester(
    srv: RunningServer,
) -> None:
    recorder = Recorder("accept")
    out = ask_over_http(srv, "dual", "carol@example.com", recorder)
    assert out["status"] == "pending_approval"
    [asked] = recorder.asked
    page = urlsplit(asked.url).path
    assert asked.url == f"{srv.url}{page}" and page == f"/admin/approvals/{out['approval_id']}"

    # Opening the page proves nothing: a sign-in form that comes back to this page.
    visitor = Overseer(srv.url)
    first = visitor.get(page)
    assert first.status_code == 200 and 'name="key"' in first.text and f'value="{page}"' in first.text
    # The agent's own `send` key cannot sign in; the key that asked cannot decide.
    assert visitor.post("/admin/signin", {"key": srv.key("agent"), "next": page}).status_code == 403
    requester = Overseer(srv.url)
    requester.get(page)
    assert requester.post("/admin/signin", {"key": srv.key("dual"), "next": page}).headers["location"] == page
    card = requester.get(page)
    assert "carol@example.com" in card.text and "Given by the requester" in card.text
    refused = requester.post(f"{page}/approve", {"reason": "it is me"})
    assert refused.status_code == 403 and "credentials that requested it" in refused.text
    assert eml_for(srv, "carol@example.com") == []

    overseer = Overseer(srv.url)
    overseer.get(page)
    assert overseer.post("/admin/signin", {"key": srv.key("admin"), "next": page}).headers["location"] == page
    overseer.get(page)
    decided = overseer.post(f"{page}/approve", {"reason": "called her back"})
    assert decided.status_code == 303
    assert len(eml_for(srv, "carol@example.com")) == 1
    assert re.search(r"already approved", overseer.get(page).text)
