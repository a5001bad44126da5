"""Contact history cannot be laundered (issue 22, item 5): `record_contact_event` is
limited per caller and per contact, and the security facts live in a summary that
recorded noise never touches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reset_mcp import contact_facts
from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.config import load_settings
from reset_mcp.errors import RateLimitedError
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.policy.throttle import Quota
from reset_mcp.store import open_store
from reset_mcp.store import sqlite as sqlite_store
from reset_mcp.store.records import ContactEvent
from reset_mcp.store.schema import MIGRATIONS
from reset_mcp.vocab import Event
from tests.conftest import CHROME_UA, SECRET, token_from

ALICE = "alice@example.com"
NOW = datetime(2030, 5, 17, 12, 0, tzinfo=UTC)


async def _history(app: App, backend: MemoryBackend) -> None:
    """Alice asks from two places, uses one link, reports the other."""
    svc = app.service
    await svc.request_password_reset(ResetInput(ALICE, "u-1", "198.51.100.7", CHROME_UA))
    assert (await svc.consume_reset_token(token_from(backend.sent[-1]), ip="198.51.100.7")).consumed
    await svc.request_password_reset(ResetInput(ALICE, "u-1", "203.0.113.50", CHROME_UA))
    await svc.report_unrequested_reset(token_from(backend.sent[-1]))


async def test_a_thousand_junk_events_do_not_erase_the_facts(
    app: App, backend: MemoryBackend, clock: FakeClock
) -> None:
    await _history(app, backend)
    before = await app.service.contacts.get_contact(ALICE)
    assert before.last_reset_ip == "203.0.113.50" and before.known_ips == ["198.51.100.7", "203.0.113.50"]
    assert before.last_reported_unrequested is not None and before.user_ids == ["u-1"]
    # The attack, slowed by the limits to one contact's hourly share at a time.
    for hour in range(17):
        clock.advance(hours=1, seconds=1)
        for n in range(60):
            await app.service.contacts.record_event(ALICE, "login_failed", {"n": hour * 60 + n})
    after = await app.service.contacts.get_contact(ALICE)
    assert after.recent_events[0].event_type == "login_failed" and after.event_count == 500
    assert all(e.event_type == "login_failed" for e in after.recent_events)  # the history is noise...
    for field in ("last_reset_request", "last_reset_ip", "known_ips", "devices", "user_ids",
                  "last_reported_unrequested"):  # fmt: skip
        assert getattr(after, field) == getattr(before, field), field  # ...the facts are not


async def test_recording_is_limited_per_contact(app: App, clock: FakeClock) -> None:
    for n in range(60):
        await app.service.contacts.record_event(ALICE, "login_failed", {"n": n})
        clock.advance(seconds=1)
    with pytest.raises(RateLimitedError) as info:
        await app.service.contacts.record_event("alice+x@example.com", "login_failed", None)
    assert info.value.retry_after == 3600 - 60 + 1 and "a contact an hour" in str(info.value)
    with pytest.raises(RateLimitedError):  # every spelling of the inbox is one contact
        await app.service.contacts.record_event("ALICE@example.com", "login_failed", None)
    await app.service.contacts.record_event("bob@example.com", "login_failed", None)  # others are not limited
    clock.advance(seconds=info.value.retry_after)
    await app.service.contacts.record_event(ALICE, "login_failed", None)


async def test_recording_is_limited_per_caller(app: App, clock: FakeClock) -> None:
    contacts = app.service.contacts
    contacts.recorded = Quota(5, timedelta(hours=1))  # the per-process cap, made small for the test
    for n in range(5):
        await contacts.record_event(f"user{n}@example.com", "signed_up", None)
    with pytest.raises(RateLimitedError, match="a caller an hour"):
        await contacts.record_event("user9@example.com", "signed_up", None)
    async with app.store.reading() as tx:
        assert await tx.list_events(mailbox="user9@example.com") == []  # nothing written


async def test_refused_requests_move_the_last_request_but_not_the_known_sets(app: App, clock: FakeClock) -> None:
    svc = app.service
    await svc.request_password_reset(ResetInput(ALICE, "u-1", "198.51.100.7", CHROME_UA))
    for n in range(300):  # an attacker's flood: all over the limit, from everywhere
        await svc.request_password_reset(ResetInput(ALICE, "u-1", f"2001:db8:{n:x}::1", CHROME_UA))
    contact = await svc.contacts.get_contact(ALICE)
    assert contact.last_reset_ip == "2001:db8:12b::1"  # the truth: the last request
    assert "198.51.100.7" in contact.known_ips and len(contact.known_ips) == 5  # the 5 accepted ones only


async def test_a_contact_from_before_the_upgrade_still_has_its_facts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'v7.db'}"
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", MIGRATIONS[:7])
    old = await open_store(url)
    async with old.transaction() as tx:
        await tx.insert_event(
            ContactEvent(ALICE, Event.RESET_REQUESTED, NOW - timedelta(days=2), "u-1", "198.51.100.7", mailbox=ALICE)
        )
        await tx.insert_event(ContactEvent(ALICE, "login_failed", NOW - timedelta(days=1), mailbox=ALICE))
    await old.aclose()
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", MIGRATIONS)
    settings = load_settings(data_dir=tmp_path, secret=SECRET, database_url=url, from_address="a@acme.test")
    async with build_app(settings, clock=FakeClock(NOW), backend=MemoryBackend()) as app:
        contact = await app.service.contacts.get_contact(ALICE)
    assert contact.last_reset_ip == "198.51.100.7" and contact.known_ips == ["198.51.100.7"]
    assert contact.user_ids == ["u-1"] and contact.event_count == 2


def test_note_caps_each_set_dropping_the_least_recently_seen() -> None:
    facts: dict[str, object] = {}
    for n in range(contact_facts.CAPS["known_ips"] + 5):
        event = ContactEvent(ALICE, Event.RESET_REQUESTED, NOW + timedelta(minutes=n), ip=f"10.0.0.{n}")
        facts = contact_facts.note(facts, event)
    known = facts["known_ips"]
    assert isinstance(known, dict) and len(known) == contact_facts.CAPS["known_ips"]
    assert "10.0.0.0" not in known and "10.0.0.104" in known
    again = contact_facts.note(facts, ContactEvent(ALICE, "login_failed", NOW, ip="192.0.2.1"))
    assert again is facts  # recorded events change nothing
