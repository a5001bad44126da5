"""What the approvals page says, read as the overseer reads it: people by the names their
keys were given, each held email's account risk and recent attempts, and the audit log as
sentences. Over HTTP against a real server here; `audit_lines` and `Names` directly below.
The same page in Chromium, with screenshots: test_screens.py."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from reset_mcp.server.admin.audit_lines import Names, audit_lines
from reset_mcp.store.records import AuditEntry, SendRecord
from tests.conftest import reset_args
from tests.httpserver import RunningServer, mcp_client, running_server
from tests.test_admin import Overseer, in_thread
from tests.test_http import make_settings

KEYS = {"support-agent": ["send"], "alice": ["approve"]}
# Four addresses in an hour for one account: more than three requests is high risk.
IPS = ("203.0.113.9", "198.51.100.23", "192.0.2.77", "203.0.113.200")
AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = make_settings(tmp_path_factory.mktemp("admin-page"), oversight_mode="gated")
    with running_server(settings, KEYS) as server:
        yield server


def ask(srv: RunningServer, email: str, ips: tuple[str, ...] = ("198.51.100.7",)) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        async with mcp_client(srv.url, srv.key("support-agent")) as agent:
            answers = []
            for ip in ips:
                result = await agent.call_tool("request_password_reset", reset_args(email=email, ip=ip))
                answers.append(dict(result.structured_content or {}))
            return answers

    return in_thread(run)


def visible(page: str) -> str:
    """The page's text as a reader sees it (tags, and so attributes such as titles, dropped)."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def card_of(page: str, approval_id: str) -> str:
    card = page[page.index(f'id="{approval_id}"') :]
    return card[: card.index("</article>")]


def audit_of(page: str) -> list[str]:
    listed = page[page.index('<ol class="audit">') :]
    return [visible(li).strip() for li in re.findall(r"<li>(.*?)</li>", listed[: listed.index("</ol>")], re.DOTALL)]


def test_people_are_named_by_their_keys_names_never_by_key_ids(srv: RunningServer) -> None:
    (held,) = ask(srv, "named@example.com")
    o = Overseer(srv.url)
    o.sign_in(srv.key("alice"))
    page = o.get("/admin").text
    shown = visible(page)
    assert "key:" not in shown, re.findall(r".{40}key:.{20}", shown)
    assert re.search(r'class="who"[^>]*>alice<', page[: page.index("</header>")])  # signed in as
    card = visible(card_of(page, held["approval_id"]))
    assert "Asked by support-agent" in card and "requested by support-agent" in card
    assert any(line.endswith("alice signed in to this page") for line in audit_of(page))

    o.post(f"/admin/approvals/{held['approval_id']}/approve", {"reason": "ticket 12"}, headers={"Origin": srv.url})
    decided = o.get(f"/admin?decided={held['approval_id']}").text
    assert "approved by alice" in visible(decided) and "key:" not in visible(decided)
    assert any(
        "alice approved the held password reset email to named@example.com “ticket 12” req_" in line
        for line in audit_of(decided)
    ), audit_of(decided)


def test_each_held_email_shows_the_accounts_risk_and_recent_attempts(srv: RunningServer) -> None:
    answers = ask(srv, "grace@example.com", IPS)
    (calm,) = ask(srv, "calm@example.com")
    assert answers[-1]["risk"] == "high" and calm["risk"] == "low"
    o = Overseer(srv.url)
    o.sign_in(srv.key("alice"))
    page = o.get("/admin").text

    card = card_of(page, answers[0]["approval_id"])  # the first request: the account's risk is now high
    assert '<span class="risk risk-high">high</span>' in card
    text = visible(card)
    assert "4 reset requests in 60 minutes (more than 3)" in text and "requests from 4 different IP addresses" in text
    assert "Recent attempts on this account (4 in the last 60 min)" in text
    for ip in IPS:
        assert re.search(rf"\d\d:\d\d:\d\d UTC {re.escape(ip)} · Chrome 131 on Windows 10 · reserved address", text)
    assert text.count("asked by support-agent") == 4

    calm_card = card_of(page, calm["approval_id"])
    assert '<span class="risk risk-low">low</span>' in calm_card
    assert "(1 in the last 60 min)" in visible(calm_card)


def test_the_audit_list_reads_as_sentences_not_json(srv: RunningServer) -> None:
    ask(srv, "audit@example.com")
    o = Overseer(srv.url)
    o.sign_in(srv.key("alice"))
    page = o.get("/admin").text
    lines = audit_of(page)
    assert lines and not any("{" in line or '":' in line for line in lines), lines
    assert any(
        re.fullmatch(
            r"#\d+ \S+ \S+ support-agent asked for a password reset email to audit@example\.com: held for approval "
            r"oversight mode gated: password_reset emails wait for a human's approval req_\S+",
            line,
        )
        for line in lines
    ), lines


# audit_lines and Names, directly ----------------------------------------------------------


def entry(action: str, actor: str = "key:k1", subject: str = "req_1", **detail: Any) -> AuditEntry:
    return AuditEntry(1, AT, actor, action, subject, detail, "0" * 64, "0" * 64)


def line(e: AuditEntry, subjects: dict[str, SendRecord] | None = None) -> tuple[str, str, str | None]:
    names = Names({"key:k1": "support-agent", "key:k2": "alice"})
    (out,) = audit_lines([e], names, subjects or {}, lambda kind: {"password_reset": "Password reset"}.get(kind, kind))
    return out.actor, out.text, out.note


def test_every_recorded_action_has_its_sentence() -> None:
    send = SendRecord.new("password_reset", "ada@example.com", "u-1", "key:k1", {}, AT)
    subjects = {"req_1": send}
    held = {"kind": "password_reset", "recipient": "ada@example.com", "outcome": "hold", "reason": "gated"}
    cases = [
        (
            entry("decision", **held),
            ("support-agent", "asked for a password reset email to ada@example.com: held for approval", "gated"),
        ),
        (
            entry("delivery_sent", "dispatcher", kind="password_reset", recipient="ada@example.com", attempts=2),
            ("reset-mcp", "delivered the password reset email to ada@example.com after 2 attempts", None),
        ),
        (
            entry(
                "delivery_failed",
                "dispatcher",
                kind="password_reset",
                recipient="ada@example.com",
                attempts=8,
                error="550 no such user",
            ),
            (
                "reset-mcp",
                "could not deliver the password reset email to ada@example.com (8 attempts)",
                "550 no such user",
            ),
        ),
        (
            entry("delivery_expired", "dispatcher", kind="password_reset", recipient="ada@example.com"),
            (
                "reset-mcp",
                "dropped the password reset email to ada@example.com: its link expired before it could leave",
                None,
            ),
        ),
        (
            entry("approval_approved", "key:k2", approval_id="apr_1", reason="ticket 12"),
            ("alice", "approved the held password reset email to ada@example.com", "“ticket 12”"),
        ),
        (
            entry("approval_rejected", "email:boss@acme.test", approval_id="apr_1", reason="not them"),
            ("boss@acme.test (email link)", "rejected the held password reset email to ada@example.com", "“not them”"),
        ),
        (
            entry("approval_expired", "system", approval_id="apr_1"),
            ("reset-mcp", "let the held password reset email to ada@example.com expire: no decision in time", None),
        ),
        (
            entry("rate_limited", reason="more than 5 reset requests per hour for this account", ip="198.51.100.7"),
            (
                "support-agent",
                "was refused a reset for ada@example.com: rate limited",
                "more than 5 reset requests per hour for this account",
            ),
        ),
        (
            entry("verify_refused", "key:k9", reason="expired"),
            ("key:k9", "tried to check a reset link for ada@example.com: refused", "expired"),
        ),
        (
            entry("consume_refused", "cli:root", reason="consumed"),
            ("root (command line)", "tried to use a reset link for ada@example.com: refused", "consumed"),
        ),
        (
            entry("token_consumed", "stdio", user_id="u-1", other_tokens_revoked=2),
            (
                "local agent (stdio)",
                "used the reset link for ada@example.com: password changed; 2 other links revoked",
                None,
            ),
        ),
        (
            entry("tokens_revoked", subject="u-1", count=1, reason="account closed"),
            ("support-agent", "revoked 1 reset link of u-1", "“account closed”"),
        ),
        (entry("admin_signin", "key:k2", subject="k2"), ("alice", "signed in to this page", None)),
        (entry("admin_signout", "key:k2", subject="k2"), ("alice", "signed out of this page", None)),
        (
            entry("reset_reported", "oauth:app", revoked=1),
            ("app (OAuth)", "reported, for the owner of ada@example.com, a reset they did not request", None),
        ),
        (
            entry("unknown_account", subject="req_9", account="mallory", kind="password_reset"),
            ("support-agent", "asked for an email to an account the directory does not know: nothing sent",
             "“mallory”"),
        ),
        (
            entry("directory_unavailable", subject="account:u-1"),
            ("support-agent", "asked for an email, but the account directory could not answer: nothing sent", None),
        ),
        (
            entry("approvals_page_offered", approval_id="apr_1", client_answer="accept"),
            ("support-agent", "was pointed at this page for the password reset email to ada@example.com",
             "agreed to open it"),
        ),
        (
            entry("approval_withdrawn", approval_id="apr_1", reason="declined in the agent's client"),
            ("support-agent", "withdrew its held password reset email to ada@example.com: its client declined "
             "to open this page", None),
        ),
    ]  # fmt: skip
    for e, expected in cases:
        assert line(e, subjects) == expected


def test_an_action_without_a_sentence_still_reads_without_json() -> None:
    actor, text, note = line(entry("idempotent_replay", subject="req_9", tool="request_password_reset", first=None))
    assert (actor, text, note) == ("support-agent", "idempotent replay req_9", "tool: request_password_reset")
    # A detail of an unexpected type (a hand-edited row) does not break the page.
    assert line(entry("delivery_sent", "dispatcher", attempts="many", kind="x", recipient="y")) == (
        "reset-mcp",
        "delivery sent req_1",
        "attempts: many · kind: x · recipient: y",
    )


def test_a_name_two_keys_share_is_told_apart_by_the_key_id() -> None:
    names = Names({"key:a1": "alice", "key:a2": "alice", "key:b1": "bob"})
    assert (names("key:a1"), names("key:a2"), names("key:b1")) == ("alice (key:a1)", "alice (key:a2)", "bob")
    assert names("key:gone") == "key:gone"  # a key no longer in the store
    assert names.replace_in("requested by key:b1 from 10.0.0.1") == "requested by bob from 10.0.0.1"
