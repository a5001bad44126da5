"""Signing out of the approvals page ends the session server-side (issue 22 item 12).

The session cookie used to be valid, signed, for its 8 hours whatever happened: signing
out only asked the browser to forget it, so a copy (a shared machine, a proxy log, a
stolen cookie) kept working. Now the store holds each session (a hash of its cookie);
every request checks it, and sign-out deletes it, on every instance sharing the store.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reset_mcp.store import AdminSessionRecord, Store, Tx, open_store
from tests.httpserver import RunningServer, running_server
from tests.pg import fresh_schema_url, pg_database_fixture
from tests.test_admin import Overseer, approval, hold, in_store
from tests.test_http import make_settings

pg_url = pg_database_fixture()
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return fresh_schema_url(request.getfixturevalue("pg_url"))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await open_store(database_url, pool_size=2)
    yield opened
    await opened.aclose()


async def test_the_store_keeps_sessions_until_they_end(store: Store) -> None:
    live = AdminSessionRecord("a" * 64, "key00001", NOW, NOW + timedelta(hours=8))
    old = AdminSessionRecord("b" * 64, "key00001", NOW - timedelta(hours=9), NOW - timedelta(hours=1))
    async with store.transaction() as tx:
        await tx.insert_admin_session(live)
        await tx.insert_admin_session(old)
    async with store.reading() as tx:
        assert await tx.get_admin_session(live.id) == live
        assert await tx.get_admin_session("c" * 64) is None
    async with store.transaction() as tx:
        assert await tx.delete_expired_admin_sessions(NOW, 100) == 1
        assert await tx.get_admin_session(old.id) is None
        assert await tx.delete_admin_session(live.id) is True
        assert await tx.delete_admin_session(live.id) is False  # ended once
        assert await tx.get_admin_session(live.id) is None


@pytest.fixture
def two_instances(database_url: str, tmp_path: Path) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two servers (as two instances or worker processes would be) on one store and secret."""
    settings = make_settings(tmp_path / "data", oversight_mode="gated", database_url=database_url)
    keys = {"agent": ["send"], "admin": ["approve"]}
    with running_server(settings, keys) as first, running_server(settings, {}) as second:
        second.keys = first.keys
        yield first, second


def signed_in_copy(server: RunningServer, cookie: str) -> Overseer:
    """Another browser holding a copy of the session cookie."""
    thief = Overseer(server.url)
    thief.http.cookies.set("rmcp_admin", cookie, path="/admin")
    return thief


def test_sign_out_kills_the_cookie_on_every_instance(two_instances: tuple[RunningServer, RunningServer]) -> None:
    first, second = two_instances
    held = hold(first, "held@example.com")
    overseer = Overseer(first.url)
    assert overseer.sign_in(first.key("admin")).status_code == 303
    cookie = overseer.http.cookies["rmcp_admin"]
    csrf = overseer.csrf
    # The session works on the other instance too (one store, one secret).
    copy = signed_in_copy(second, cookie)
    assert "Held emails" in copy.get("/admin").text

    # Signing out on the second instance...
    out = copy.post("/admin/signout", {})
    assert out.status_code == 303 and 'rmcp_admin=""' in out.headers["set-cookie"]
    # ...ends it on the first: the page, a decision, a preview, all refuse the copied cookie.
    for server in (first, second):
        replay = signed_in_copy(server, cookie)
        page = replay.get("/admin")
        assert page.status_code == 200 and 'name="key"' in page.text
        replay.csrf = csrf  # the page's CSRF token from before, which is bound to this cookie
        refused = replay.post(f"/admin/approvals/{held['approval_id']}/approve", {"reason": "x"})
        assert refused.status_code == 401 and "session ended" in html.unescape(refused.text)
        preview = replay.get(f"/admin/approvals/{held['approval_id']}/preview")
        assert preview.status_code == 401
    assert approval(first, held["approval_id"])["status"] == "pending"
    # The overseer signs in again and decides: a new session, its own row.
    again = Overseer(second.url)
    assert again.sign_in(first.key("admin")).status_code == 303
    assert again.http.cookies["rmcp_admin"] != cookie
    decided = again.post(f"/admin/approvals/{held['approval_id']}/approve", {"reason": "ok"})
    assert decided.status_code == 303
    assert approval(first, held["approval_id"])["status"] == "approved"


def test_sign_out_is_audited_and_needs_the_csrf_token(tmp_path: Path) -> None:
    with running_server(make_settings(tmp_path / "data"), {"admin": ["approve"]}) as server:
        overseer = Overseer(server.url)
        assert overseer.sign_in(server.key("admin")).status_code == 303
        cookie = overseer.http.cookies["rmcp_admin"]
        assert overseer.post("/admin/signout", {"csrf": "forged"}, csrf=False).status_code == 403
        assert 'name="key"' not in signed_in_copy(server, cookie).get("/admin").text  # still signed in
        assert overseer.post("/admin/signout", {}).status_code == 303
        assert 'name="key"' in signed_in_copy(server, cookie).get("/admin").text

        async def sessions_and_audit(tx: Tx) -> tuple[AdminSessionRecord | None, list[tuple[str, str]]]:
            entries = await tx.list_audit(limit=100)
            return await tx.get_admin_session(session_id(cookie)), [(e.actor, e.action) for e in entries]

        row, audit = in_store(server, sessions_and_audit)
    actor = f"key:{server.key_id('admin')}"
    assert row is None and audit == [(actor, "admin_signin"), (actor, "admin_signout")]


def session_id(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()
