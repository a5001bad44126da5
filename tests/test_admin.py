"""The approvals page (/admin) and approval by email, over HTTP against a real uvicorn server:
sign-in, the session cookie, CSRF and Origin checks, the held email rendered with its link
masked, signed single-use email links whose GET never decides, and one decision per approval
whatever the channel (page, email link, REST, CLI), all in one audit chain. Expiry runs on a
fake clock through Starlette's TestClient. The same flows in Chromium: test_admin_browser.py."""

from __future__ import annotations

import argparse
import html
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from starlette.testclient import TestClient

from reset_mcp.app import App, build_app
from reset_mcp.audit import verify_chain
from reset_mcp.cli.admin import run_admin
from reset_mcp.cli.keys import run_keys
from reset_mcp.clock import FakeClock
from reset_mcp.deps import Caller
from reset_mcp.emails.kind import MASK
from reset_mcp.errors import ConflictError
from reset_mcp.flows.reset import ResetInput
from reset_mcp.links import ApprovalLinks
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.server.admin.session import SessionCodec, redact_access_log
from reset_mcp.server.http.app import build_http_app
from reset_mcp.store import Tx, open_store
from reset_mcp.tokens import TokenSigner
from tests.conftest import CHROME_UA, SECRET, reset_args, text_of_eml
from tests.httpserver import RunningServer, make_keys, mcp_client, running_server
from tests.test_http import make_settings, reset_token_for

OVERSEER = "boss@acme.test"
KEYS = {"agent": ["send"], "admin": ["approve"], "dual": ["send", "approve"], "doomed": ["approve"]}
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
JWT_RE = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")
HTTP = httpx.Client(verify=False, timeout=30)  # plain http on loopback; one client, not one per call
HEADERS = {
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",  # never to another site; see admin_session.SECURITY_HEADERS
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = make_settings(tmp_path_factory.mktemp("admin"), oversight_mode="gated", oversight_email=OVERSEER)
    with running_server(settings, KEYS) as server:
        yield server


def in_thread(fn: Callable[[], Awaitable[Any]]) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, fn).result()


def hold(srv: RunningServer, email: str, key: str = "agent") -> dict[str, Any]:
    """An agent asks for a reset over MCP; gated oversight holds it."""

    async def ask() -> dict[str, Any]:
        async with mcp_client(srv.url, srv.key(key)) as agent:
            result = await agent.call_tool("request_password_reset", reset_args(email=email, user_id=f"u-{email}"))
            return dict(result.structured_content or {})

    held = in_thread(ask)
    assert held["status"] == "pending_approval", held
    return held


def in_store(srv: RunningServer, fn: Callable[[Tx], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        store = await open_store(srv.settings.effective_database_url, pool_size=1)
        try:
            async with store.transaction() as tx:
                return await fn(tx)
        finally:
            await store.aclose()

    return in_thread(run)


def approval(srv: RunningServer, approval_id: str) -> dict[str, Any]:
    listed = HTTP.get(f"{srv.url}/v1/approvals", params={"limit": 1000}, headers=srv.auth("admin")).json()
    return next(a for a in listed["approvals"] if a["id"] == approval_id)


def notice_links(srv: RunningServer, approval_id: str) -> dict[str, str]:
    for path in sorted(srv.settings.effective_outbox_dir.glob("*-oversight_notice-*.eml")):
        text = text_of_eml(path)
        if approval_id in text:
            found = re.findall(r"(http\S+/admin/decide/\S+)", text)
            return {urlsplit(url).path.rsplit("/", 1)[1]: url for url in found}
    raise AssertionError(f"no oversight notice for {approval_id}")


class Overseer:
    """A browser-like client: keeps its cookies and each page's CSRF token."""

    def __init__(self, url: str, client: httpx.Client | None = None) -> None:
        self.http = client or httpx.Client(base_url=url, verify=False, timeout=30)
        self.csrf: str | None = None

    def _seen(self, response: httpx.Response) -> httpx.Response:
        match = CSRF_RE.search(response.text)
        if match:
            self.csrf = html.unescape(match.group(1))
        return response

    def get(self, path: str) -> httpx.Response:
        return self._seen(self.http.get(path))

    def post(self, path: str, data: dict[str, str], *, csrf: bool = True, **kw: Any) -> httpx.Response:
        fields = {"csrf": self.csrf or "", **data} if csrf else data
        return self._seen(self.http.post(path, data=fields, **kw))

    def sign_in(self, key: str) -> httpx.Response:
        """The sign-in answer; once signed in, the pending page was loaded (its CSRF token kept)."""
        self.get("/admin")
        answer = self.post("/admin/signin", {"key": key})
        if answer.status_code == 303:
            self.get("/admin")
        return answer

    def follow_link(self, url: str, reason: str = "") -> httpx.Response:
        """Open an email link (the confirmation page), then press its button."""
        page = self.get(url)
        assert page.status_code == 200, page.text
        query = parse_qs(urlsplit(url).query)
        return self.post(urlsplit(url).path, {"exp": query["exp"][0], "sig": query["sig"][0], "reason": reason})


# --- sign-in and the session -------------------------------------------------------------


def test_sign_in_needs_an_approve_key_and_sets_a_strict_cookie(srv: RunningServer) -> None:
    o = Overseer(srv.url)
    form = o.get("/admin")
    assert form.status_code == 200 and 'name="key"' in form.text and o.csrf
    assert "rmcp_form=" in form.headers["set-cookie"] and "SameSite=strict" in form.headers["set-cookie"]
    for name, value in HEADERS.items():
        assert form.headers[name] == value
    csp = form.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert 'name="viewport"' in form.text

    wrong = o.post("/admin/signin", {"key": "rmcp_abcdefgh_wrong"})
    assert wrong.status_code == 401 and "not valid" in wrong.text and 'name="key"' in wrong.text
    assert "rmcp_admin=" not in wrong.headers.get("set-cookie", "")
    agent = o.post("/admin/signin", {"key": srv.key("agent")})
    assert agent.status_code == 403 and "'approve' scope" in html.unescape(agent.text)
    assert o.post("/admin/signin", {"key": srv.key("admin")}, csrf=False).status_code == 403
    assert o.post("/admin/signin", {"key": srv.key("admin"), "csrf": "forged"}, csrf=False).status_code == 403
    # A page on another local origin passes the host check but not ours.
    other = o.post("/admin/signin", {"key": srv.key("admin")}, headers={"Origin": "http://localhost:3000"})
    assert other.status_code == 403 and "another site" in other.text

    signed = o.post("/admin/signin", {"key": srv.key("admin")}, headers={"Origin": srv.url})
    assert signed.status_code == 303 and signed.headers["location"] == "/admin"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith("rmcp_admin=v1.") and f".{srv.key_id('admin')}." in cookie
    for attribute in ("HttpOnly", "Path=/admin", "SameSite=strict", "Max-Age=28800"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain http on loopback; see test_public_bind_cookies_are_secure
    page = o.get("/admin")
    assert page.status_code == 200 and "Held emails" in page.text and f"key:{srv.key_id('admin')}" in page.text

    value = o.http.cookies["rmcp_admin"]
    o.http.cookies.set("rmcp_admin", value[:-2] + ("AA" if not value.endswith("AA") else "BB"), path="/admin")
    assert 'name="key"' in o.get("/admin").text  # a tampered cookie is no session


def test_a_revoked_key_ends_its_sessions_at_once(srv: RunningServer) -> None:
    held = hold(srv, "revoked@example.com")
    o = Overseer(srv.url)
    assert o.sign_in(srv.key("doomed")).status_code == 303
    assert "revoked@example.com" in o.get("/admin").text
    assert run_keys(srv.settings, argparse.Namespace(action="revoke", id=srv.key_id("doomed"))) == 0
    assert 'name="key"' in o.get("/admin").text
    refused = o.post(f"/admin/approvals/{held['approval_id']}/approve", {"reason": "x"})
    assert refused.status_code == 401 and approval(srv, held["approval_id"])["status"] == "pending"


# --- the pending page ----------------------------------------------------------------------


def test_pending_page_shows_the_held_email_with_its_link_masked(srv: RunningServer) -> None:
    held = hold(srv, "masked@example.com")
    o = Overseer(srv.url)
    assert Overseer(srv.url).get(f"/admin/approvals/{held['approval_id']}/preview").status_code == 401
    o.sign_in(srv.key("admin"))
    page = o.get("/admin").text
    card = page[page.index(f'id="{held["approval_id"]}"') :]
    card = card[: card.index("</article>")]
    for shown in (
        "Password reset", "masked@example.com", f'title="key:{srv.key_id("agent")}">agent<', "held because",
        "gated: password_reset emails wait for a human&#39;s approval", "Reset your Acme password",
        f"token={MASK}", "198.51.100.7", "Chrome 131 on Windows 10",
    ):  # fmt: skip
        assert shown.lower() in card.lower(), shown
    assert re.search(r"<strong>in 1[0-5] min</strong>", card)
    assert not JWT_RE.search(page)
    assert 'class="audit"' in page and "</strong> signed in to this page" in page
    assert "</strong> asked for a password reset email to masked@example.com: held for approval" in page

    preview = o.get(f"/admin/approvals/{held['approval_id']}/preview")
    assert preview.status_code == 200 and MASK in preview.text and not JWT_RE.search(preview.text)
    assert "sandbox" in preview.headers["content-security-policy"] and preview.headers["x-frame-options"] == "DENY"
    assert preview.headers["referrer-policy"] == "no-referrer"
    # Rendering the preview minted nothing: no token record, no reset email.
    assert in_store(srv, lambda tx: tx.get_token_for_send(held["request_id"])) is None
    with pytest.raises(AssertionError, match="no reset email"):
        reset_token_for(srv.settings, "masked@example.com")
    assert o.get("/admin/static/admin.css").headers["content-type"].startswith("text/css")


def test_page_decisions_need_the_csrf_token_and_our_origin(srv: RunningServer) -> None:
    first, second = hold(srv, "csrf-a@example.com"), hold(srv, "csrf-b@example.com")
    o = Overseer(srv.url)
    o.sign_in(srv.key("admin"))
    url = f"/admin/approvals/{first['approval_id']}/approve"
    assert o.post(url, {"reason": "no token"}, csrf=False).status_code == 403
    other = Overseer(srv.url)
    other.sign_in(srv.key("admin"))  # a valid token, but of another session
    assert o.post(url, {"reason": "x", "csrf": other.csrf or ""}, csrf=False).status_code == 403
    assert o.post(url, {}, headers={"Origin": "http://localhost:3000"}).status_code == 403
    assert o.post(url, {}, headers={"Content-Type": "application/json"}).status_code == 415
    assert approval(srv, first["approval_id"])["status"] == "pending"

    done = o.post(url, {"reason": "checked the ticket"}, headers={"Origin": srv.url})
    assert done.status_code == 303 and done.headers["location"] == f"/admin?decided={first['approval_id']}"
    banner = o.get(done.headers["location"]).text
    assert "<strong>approved</strong>" in banner and "checked the ticket" in banner
    record = approval(srv, first["approval_id"])
    assert record["decided_by"] == f"key:{srv.key_id('admin')}" and record["decision_reason"] == "checked the ticket"
    assert reset_token_for(srv.settings, "csrf-a@example.com")

    reject = f"/admin/approvals/{second['approval_id']}/reject"
    no_reason = o.post(reject, {"reason": " "})
    assert no_reason.status_code == 400 and "reason" in no_reason.text
    assert o.post(reject, {"reason": "not asked by the user"}).status_code == 303
    assert approval(srv, second["approval_id"])["status"] == "rejected"
    assert o.post("/admin/approvals/apr_nope/approve", {}).status_code == 404


def test_the_requesting_key_cannot_approve_its_own_send_on_the_page(srv: RunningServer) -> None:
    own = hold(srv, "own@example.com", key="dual")
    o = Overseer(srv.url)
    o.sign_in(srv.key("dual"))
    refused = o.post(f"/admin/approvals/{own['approval_id']}/approve", {})
    assert refused.status_code == 403 and "credentials that requested it" in refused.text
    assert approval(srv, own["approval_id"])["status"] == "pending"


# --- approval by email ----------------------------------------------------------------------


def test_email_links_confirm_first_and_decide_once(srv: RunningServer) -> None:
    held = hold(srv, "linked@example.com")
    links = notice_links(srv, held["approval_id"])
    assert set(links) == {"approve", "reject"} and all(u.startswith(f"{srv.url}/admin/decide/") for u in links.values())
    scanner = HTTP
    for _ in range(2):  # a mail scanner fetching the link decides nothing
        page = scanner.get(links["approve"])
        assert page.status_code == 200 and "Nothing has been decided yet" in page.text
        assert page.headers["referrer-policy"] == "same-origin"
    assert approval(srv, held["approval_id"])["status"] == "pending"

    approve = urlsplit(links["approve"])
    swapped = links["reject"].replace("/reject?", "/approve?")
    longer = re.sub(r"exp=(\d+)", lambda m: f"exp={int(m.group(1)) + 3600}", links["approve"])
    other = links["approve"].replace(held["approval_id"], "apr_" + "x" * 16)
    for forged in (swapped, longer, other, f"{srv.url}{approve.path}", links["approve"][:-2] + "xx"):
        assert scanner.get(forged).status_code == 403, forged

    o = Overseer(srv.url)
    page = o.get(links["approve"])
    query = parse_qs(approve.query)
    form = {"exp": query["exp"][0], "sig": query["sig"][0], "reason": "ok by mail"}
    assert o.post(approve.path, form, csrf=False).status_code == 403  # the form's CSRF token is required
    assert o.post(approve.path, {**form, "sig": "A" * 43}).status_code == 403
    done = o.post(approve.path, form)
    assert done.status_code == 200 and "Approved" in done.text and page.status_code == 200
    record = approval(srv, held["approval_id"])
    assert record["status"] == "approved" and record["decided_by"] == f"email:{OVERSEER}"
    assert reset_token_for(srv.settings, "linked@example.com")

    again = o.get(links["reject"])
    assert again.status_code == 200 and "already approved" in again.text and 'name="sig"' not in again.text
    query = parse_qs(urlsplit(links["reject"]).query)
    form = {"exp": query["exp"][0], "sig": query["sig"][0], "reason": "too late"}
    assert o.post(urlsplit(links["reject"]).path, form).status_code == 409


def test_one_decision_per_approval_whatever_the_channel(srv: RunningServer) -> None:
    channels = ("page", "email", "rest", "cli")
    held = {name: hold(srv, f"{name}@channels.example")["approval_id"] for name in channels}
    page = Overseer(srv.url)
    page.sign_in(srv.key("admin"))
    admin = srv.auth("admin")
    # Confirmation pages opened from the email before anyone decided: their buttons come later.
    opened = {}
    for approval_id in held.values():
        for action, link in notice_links(srv, approval_id).items():
            opened[approval_id, action] = reader = Overseer(srv.url)
            assert reader.get(link).status_code == 200

    def cli(action: str, approval_id: str) -> int:
        args = argparse.Namespace(
            command="approvals", action=action, id=approval_id, reason="by cli", key=srv.key("admin")
        )
        return run_admin(srv.settings, args)

    assert page.post(f"/admin/approvals/{held['page']}/approve", {"reason": "by page"}).status_code == 303
    assert Overseer(srv.url).follow_link(notice_links(srv, held["email"])["reject"], "by email").status_code == 200
    rest = HTTP.post(f"{srv.url}/v1/approvals/{held['rest']}/approve", json={"reason": "by rest"}, headers=admin)
    assert rest.status_code == 200
    assert cli("approve", held["cli"]) == 0

    for name, approval_id in held.items():
        for action in ("approve", "reject"):
            refused = page.post(f"/admin/approvals/{approval_id}/{action}", {"reason": "again"})
            assert refused.status_code == 409 and "already" in refused.text, (name, action)
            link = notice_links(srv, approval_id)[action]
            query = parse_qs(urlsplit(link).query)
            form = {"exp": query["exp"][0], "sig": query["sig"][0], "reason": "again"}
            late = opened[approval_id, action].post(urlsplit(link).path, form)
            assert late.status_code == 409 and "already" in late.text, (name, action)
            assert "Already decided" in Overseer(srv.url).get(link).text
            rest = HTTP.post(f"{srv.url}/v1/approvals/{approval_id}/{action}", json={"reason": "x"}, headers=admin)
            assert rest.status_code == 409, (name, action)
        with pytest.raises(ConflictError, match="already"):
            cli("reject" if name == "cli" else "approve", approval_id)

    deciders = {name: approval(srv, approval_id)["decided_by"] for name, approval_id in held.items()}
    assert deciders["page"] == deciders["rest"] == f"key:{srv.key_id('admin')}"
    assert deciders["email"] == f"email:{OVERSEER}" and deciders["cli"] == f"key:{srv.key_id('admin')} (admin)"
    assert approval(srv, held["email"])["status"] == "rejected"
    entries = in_store(srv, lambda tx: tx.list_audit(limit=100_000))
    assert verify_chain(entries, TokenSigner(SECRET).audit_ring).ok  # keyed: checked with the ring
    for name, approval_id in held.items():
        decisions = [
            e for e in entries if e.action.startswith("approval_") and e.detail.get("approval_id") == approval_id
        ]
        assert [e.actor for e in decisions] == [deciders[name].removesuffix(" (admin)")], name
        assert [e.detail["decider"] for e in decisions] == [deciders[name]], name


# --- expiry on a fake clock; cookies on a public bind; the signed parts alone ----------------


@asynccontextmanager
async def fake_clock_app(settings: Any, clock: FakeClock, box: dict[str, Any]) -> AsyncIterator[App]:
    box["backend"] = MemoryBackend()
    async with build_app(settings, clock=clock, backend=box["backend"], approval_links=True) as app:
        box["app"] = app
        yield app


def test_links_and_sessions_expire(tmp_path: Path) -> None:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    settings = make_settings(
        tmp_path, oversight_mode="gated", oversight_email=OVERSEER, approval_window_minutes=30, http_port=8765
    )
    keys = make_keys(settings, {"admin": ["approve"]})
    box: dict[str, Any] = {}
    asgi = build_http_app(settings, app_factory=lambda: fake_clock_app(settings, clock, box))
    with TestClient(asgi, base_url="http://127.0.0.1:8765", follow_redirects=False) as client:
        app: App = box["app"]
        ask = ResetInput(email="late@example.com", user_id="u-late", ip="198.51.100.7", user_agent=CHROME_UA)
        assert client.portal is not None
        held = client.portal.call(app.service.request_password_reset, ask, Caller("key:agent001"))
        notice = box["backend"].sent[-1]
        assert notice.kind == "oversight_notice" and held.approval_id and held.approval_id in notice.text
        link = re.search(r"(http\S+/approve\?\S+)", notice.text)
        assert link and f"exp={int((clock.now() + timedelta(minutes=30)).timestamp())}" in link.group(1)
        o = Overseer("", client)
        assert o.sign_in(keys["admin"][0]).status_code == 303
        assert o.get(link.group(1)).status_code == 200

        clock.advance(minutes=31)
        assert o.get(link.group(1)).status_code == 410
        query = parse_qs(urlsplit(link.group(1)).query)
        form = {"exp": query["exp"][0], "sig": query["sig"][0]}
        assert o.post(urlsplit(link.group(1)).path, form).status_code == 410
        assert "Nothing is waiting" in o.get("/admin").text  # the desk expired it
        assert o.get(link.group(1)).status_code == 410
        assert [m.kind for m in box["backend"].sent] == ["oversight_notice"]

        clock.advance(hours=8)
        assert 'name="key"' in o.get("/admin").text  # the 8-hour session is over


def test_public_bind_cookies_are_secure(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, http_host="0.0.0.0", allowed_hosts="reset.example.com", trust_caller_recipient=True,
        allowed_origins="https://reset.example.com", public_url="https://reset.example.com",
    )  # fmt: skip
    keys = make_keys(settings, {"admin": ["approve"]})
    with TestClient(build_http_app(settings), base_url="https://reset.example.com", follow_redirects=False) as client:
        o = Overseer("", client)
        assert "Secure" in o.get("/admin").headers["set-cookie"]
        signed = o.post("/admin/signin", {"key": keys["admin"][0]}, headers={"Origin": "https://reset.example.com"})
        assert signed.status_code == 303 and "; Secure" in signed.headers["set-cookie"]
        assert "Held emails" in o.get("/admin").text
        # Approval by email is off without RESET_MCP_OVERSIGHT_EMAIL.
        assert client.get("/admin/decide/apr_x/approve?exp=1&sig=x").status_code == 404
        # Failed sign-ins are throttled per client address, then even the right key waits.
        client.cookies.clear()
        guesser = Overseer("", client)
        for _ in range(10):
            assert guesser.sign_in("rmcp_abcdefgh_guess").status_code == 401
        throttled = guesser.post("/admin/signin", {"key": keys["admin"][0]})
        assert throttled.status_code == 429 and 1 <= int(throttled.headers["retry-after"]) <= 300


def test_link_signatures_stay_out_of_access_logs() -> None:
    logger = logging.getLogger("test.access")
    redact_access_log(logger)
    redact_access_log(logger)
    assert len(logger.filters) == 1
    path = "/admin/decide/apr_1/approve?exp=123&sig=Abc-_0"
    record = logger.makeRecord("x", logging.INFO, "f", 1, '%s - "%s %s" %d', ("1.2.3.4", "GET", path, 200), None)
    assert logger.filters[0].filter(record)  # type: ignore[union-attr]
    assert record.getMessage() == '1.2.3.4 - "GET /admin/decide/apr_1/approve?exp=123&sig=[redacted]" 200'


def test_signed_sessions_and_links_alone() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    codec = SessionCodec(SECRET)
    session = codec.issue("abcd1234", now)
    assert codec.read(session.value, now) == session
    assert codec.read(session.value, now + timedelta(hours=8)) is None
    assert SessionCodec(SECRET + "x").read(session.value, now) is None
    swapped = session.value.replace("abcd1234", "abcd1235")
    assert codec.read(swapped, now) is None and codec.read("v1." + "x" * 300, now) is None
    assert codec.csrf_ok(session.value, codec.csrf_for(session.value))
    assert not codec.csrf_ok(session.value, codec.csrf_for(codec.issue("abcd1234", now).value))
    assert not codec.csrf_ok(None, codec.csrf_for("")) and not codec.csrf_ok(session.value, None)

    links = ApprovalLinks(SECRET, "https://reset.example.com/", OVERSEER)
    urls = links("apr_1", now + timedelta(minutes=30))
    approve = parse_qs(urlsplit(urls["approve_url"]).query)
    exp, sig = approve["exp"][0], approve["sig"][0]
    assert urls["approve_url"].startswith("https://reset.example.com/admin/decide/apr_1/approve?")
    assert links.check("apr_1", "approve", exp, sig, now) == "ok"
    assert links.check("apr_1", "approve", exp, sig, now + timedelta(minutes=30)) == "expired"
    assert links.check("apr_1", "reject", exp, sig, now) == "invalid"
    assert links.check("apr_2", "approve", exp, sig, now) == "invalid"
    assert links.check("apr_1", "approve", str(int(exp) + 1), sig, now) == "invalid"
    assert links.check("apr_1", "delete", exp, sig, now) == "invalid"
    assert ApprovalLinks(SECRET, "https://x", "other@acme.test").check("apr_1", "approve", exp, sig, now) == "invalid"
    assert ApprovalLinks(SECRET + "x", "https://x", OVERSEER).check("apr_1", "approve", exp, sig, now) == "invalid"
