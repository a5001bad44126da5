"""Abuse detection and what follows from it (issue 4): every rule and threshold on a fake
clock, window edges, rate limits per account and per IP, one alert per burst, agent
alerts (dedupe and limit), contact-event metadata bounds, the password-changed notice,
and the "this wasn't me" link."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.config import Settings
from reset_mcp.errors import InvalidInputError
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.policy import abuse
from reset_mcp.policy.abuse import AbuseRules, assess
from reset_mcp.store.records import ContactEvent
from reset_mcp.vocab import ATTEMPTS, Event
from tests.conftest import CHROME_UA, client_for, reset_args, token_from

ALICE = "alice@example.com"
FIREFOX_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
GB_IP, GB_IP2, SE_IP = "81.2.69.160", "81.2.69.161", "89.160.20.112"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- the pure rules


def ev(
    minutes_ago: float,
    ip: str = "8.8.8.8",
    device: str | None = "Chrome/Windows",
    country: str | None = None,
    event_type: str = Event.RESET_REQUESTED,
) -> ContactEvent:
    return ContactEvent(
        email=ALICE,
        event_type=event_type,
        created_at=T0 - timedelta(minutes=minutes_ago),
        ip=ip,
        device=device,
        country=country,
    )


RULES = AbuseRules()


@pytest.mark.parametrize(
    ("window", "history", "risk", "action"),
    [
        ([], [], "low", "allow"),
        ([ev(1), ev(2), ev(3)], [], "low", "allow"),  # three is not "more than three"
        ([ev(1), ev(2), ev(3), ev(4)], [], "high", "alert"),
        ([ev(i) for i in range(5)], [], "high", "block"),  # at the account limit: block
        ([ev(1, "8.8.8.1"), ev(2, "8.8.8.2")], [], "low", "allow"),
        ([ev(1, "8.8.8.1"), ev(2, "8.8.8.2"), ev(3, "8.8.8.3")], [], "elevated", "captcha"),
        # refused (rate-limited) attempts still count as attempts
        (
            [ev(i, event_type=Event.RESET_RATE_LIMITED if i % 2 else Event.RESET_REQUESTED) for i in range(4)],
            [],
            "high",
            "alert",
        ),
        # events of other kinds are not attempts
        ([ev(i, event_type="login_failed") for i in range(6)], [], "low", "allow"),
        # new country / device: only against earlier history
        ([ev(1, country="SE")], [], "low", "allow"),
        ([ev(1, country="SE")], [ev(200, country="GB")], "elevated", "captcha"),
        ([ev(1, country="GB")], [ev(200, country="GB")], "low", "allow"),
        ([ev(1, country="SE")], [ev(200, country=None)], "low", "allow"),  # nothing known to compare
        ([ev(1, device="Firefox/Linux")], [ev(200)], "elevated", "captcha"),
        ([ev(1, device="Firefox/Linux", country="SE")], [ev(200, country="GB")], "high", "alert"),
        # the owner's "this wasn't me" raises one step
        ([ev(1), ev(0, event_type=Event.RESET_REPORTED)], [], "elevated", "captcha"),
        (
            [ev(1, "8.8.8.1"), ev(2, "8.8.8.2"), ev(3, "8.8.8.3"), ev(0, event_type=Event.RESET_REPORTED)],
            [],
            "high",
            "alert",
        ),
    ],
)
def test_assess_rules_and_thresholds(
    window: list[ContactEvent], history: list[ContactEvent], risk: str, action: str
) -> None:
    report = assess(window, history, RULES)
    assert (report.risk, report.recommended_action) == (risk, action), report.reasons
    assert bool(report.reasons) == (risk != "low")


def test_assess_reports_what_it_saw() -> None:
    window = [ev(30, "8.8.8.1", country="GB"), ev(20, "8.8.8.2", "Firefox/Linux", "SE"), ev(10, "8.8.8.1")]
    report = assess(window, [ev(300, country="GB")], RULES)
    assert report.attempts == 3
    assert report.distinct_ips == ["8.8.8.1", "8.8.8.2"]
    assert report.distinct_devices == ["Chrome/Windows", "Firefox/Linux"]
    assert report.countries == ["GB", "SE"]
    assert (report.first_attempt, report.last_attempt) == (T0 - timedelta(minutes=30), T0 - timedelta(minutes=10))
    assert report.risk == "high"
    assert report.reasons == [
        "country never seen for this account: SE",
        "device never seen for this account: Firefox/Linux",
    ]


def test_rules_are_configurable() -> None:
    strict = AbuseRules(high_attempts=1, elevated_ips=2)
    assert assess([ev(1), ev(2)], [], strict).risk == "high"
    assert assess([ev(1, "8.8.8.1"), ev(2, "8.8.8.2")], [], AbuseRules(high_attempts=5, elevated_ips=2)).risk == (
        "elevated"
    )
    assert assess([ev(1)], [], RULES, ip_attempts=21).risk == "high"  # an IP over its limit
    assert assess([ev(1)], [], RULES, ip_attempts=20).risk == "low"


# --------------------------------------------------------------------------- through the service


def _geo_db(path: Path) -> Path:
    writer = MMDBWriter(
        ip_version=6, database_type="GeoLite2-Country", languages=["en"], description="t", ipv4_compatible=True
    )
    writer.insert_network(IPSet(["81.2.69.0/24"]), {"country": {"iso_code": "GB", "names": {"en": "United Kingdom"}}})
    writer.insert_network(IPSet(["89.160.20.0/24"]), {"country": {"iso_code": "SE", "names": {"en": "Sweden"}}})
    writer.to_db_file(str(path))
    return path


@pytest.fixture
async def geo_app(
    settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend, tmp_path: Path
) -> AsyncIterator[App]:
    settings = settings_factory(geoip_db=_geo_db(tmp_path / "countries.mmdb"))
    async with build_app(settings, clock=clock, backend=backend) as built:
        yield built


async def _request(app: App, **over: Any) -> Any:
    return await app.service.request_password_reset(ResetInput(**reset_args(**over)))


async def _check(client: Client, **args: Any) -> dict[str, Any]:
    result = await client.call_tool("check_reset_abuse", {"email": ALICE, **args})
    assert not result.is_error, result.content
    return result.structured_content


def _kinds(backend: MemoryBackend) -> list[str]:
    return [m.kind for m in backend.sent]


async def test_more_than_three_requests_in_an_hour_is_high_and_alerts_once(
    app: App, client: Client, clock: FakeClock, backend: MemoryBackend
) -> None:
    for _ in range(3):
        out = await _request(app)
        assert out.risk == "low" and not out.alert_queued
        clock.advance(minutes=15)
    fourth = await _request(app)  # t0 + 45 min: four in the hour
    assert fourth.status == "sent" and fourth.risk == "high" and fourth.alert_queued
    report = await _check(client)
    assert report["attempts"] == 4 and report["risk"] == "high" and report["recommended_action"] == "alert"
    assert "4 reset requests in 60 minutes (more than 3)" in report["reasons"]
    by_user = (await client.call_tool("check_reset_abuse", {"user_id": "u-1"})).structured_content
    assert (by_user["attempts"], by_user["risk"]) == (4, "high")
    assert _kinds(backend) == ["password_reset"] * 4 + ["security_alert"]


async def test_requests_just_outside_the_window_do_not_count(
    app: App, client: Client, clock: FakeClock, backend: MemoryBackend
) -> None:
    for _ in range(3):
        await _request(app)
    clock.advance(minutes=60, seconds=1)
    out = await _request(app)
    assert out.risk == "low" and not out.alert_queued
    assert (await _check(client))["attempts"] == 1
    assert "security_alert" not in _kinds(backend)
    # A narrower look-back counts only what is inside it.
    clock.advance(minutes=10)
    await _request(app)
    assert (await _check(client, window_minutes=5))["attempts"] == 1
    assert (await _check(client, window_minutes=11))["attempts"] == 2
    assert (await _check(client, window_minutes=72))["attempts"] == 5


async def test_three_distinct_ips_are_elevated(app: App, client: Client) -> None:
    await _request(app, ip="8.8.8.1")
    await _request(app, ip="8.8.8.2")
    assert (await _check(client))["risk"] == "low"
    out = await _request(app, ip="8.8.8.3")
    assert out.risk == "elevated" and not out.alert_queued
    report = await _check(client, ip="8.8.8.3")
    assert report["distinct_ips"] == ["8.8.8.1", "8.8.8.2", "8.8.8.3"]
    assert report["recommended_action"] == "captcha" and report["ip_attempts"] == 1
    assert "requests from 3 different IP addresses" in report["reasons"]


async def test_a_new_country_raises_risk_only_against_earlier_history(
    geo_app: App, clock: FakeClock, backend: MemoryBackend
) -> None:
    async with client_for(geo_app) as client:
        # No history: two countries in one window are not "new" to anything.
        await _request(geo_app, ip=GB_IP)
        first = await _request(geo_app, ip=SE_IP)
        assert first.risk == "low"
        assert (await _check(client))["countries"] == ["GB", "SE"]

        # Bob has a history in GB; two hours later a request from Sweden is new.
        bob = {"email": "bob@example.com", "user_id": "u-2"}
        await _request(geo_app, ip=GB_IP, **bob)
        clock.advance(hours=2)
        same = await _request(geo_app, ip=GB_IP2, **bob)
        assert same.risk == "low"
        new = await _request(geo_app, ip=SE_IP, **bob)
        assert new.risk == "elevated" and not new.alert_queued
        report = await _check(client, email="bob@example.com")
        assert report["countries"] == ["GB", "SE"]
        assert "country never seen for this account: SE" in report["reasons"]
        contact = (await client.call_tool("get_contact", {"email": "bob@example.com"})).structured_content
        assert contact["countries"] == ["GB", "SE"]
    # The location in the reset email came from the GeoIP file.
    assert "Sweden" in backend.sent[-1].text


async def test_a_new_device_raises_risk_and_with_a_new_country_alerts(
    geo_app: App, clock: FakeClock, backend: MemoryBackend
) -> None:
    async with client_for(geo_app) as client:
        await _request(geo_app, ip=GB_IP)
        clock.advance(days=3)
        new_device = await _request(geo_app, ip=GB_IP, user_agent=FIREFOX_UA)
        assert new_device.risk == "elevated"
        report = await _check(client)
        assert "device never seen for this account: Firefox/Linux" in report["reasons"]
        assert report["distinct_devices"] == ["Firefox/Linux"]

        carol = {"email": "carol@example.com", "user_id": "u-3"}
        await _request(geo_app, ip=GB_IP, user_agent=CHROME_UA, **carol)
        clock.advance(days=3)
        both = await _request(geo_app, ip=SE_IP, user_agent=FIREFOX_UA, **carol)
        assert both.risk == "high" and both.alert_queued
    assert [(m.kind, m.to) for m in backend.sent if m.kind == "security_alert"] == [
        ("security_alert", "carol@example.com")
    ]


async def test_account_rate_limit_answers_retry_after_and_records_the_attempt(
    app: App, client: Client, clock: FakeClock, backend: MemoryBackend
) -> None:
    for _ in range(5):
        assert (await _request(app)).status == "sent"
        clock.advance(minutes=1)
    sent_before = list(backend.sent)
    assert _kinds(backend).count("password_reset") == 5
    # t0 + 5 min: the oldest accepted request (t0) leaves the hour at t0 + 60 min.
    limited = await _request(app, ip="8.8.4.4")
    assert limited.status == "rate_limited"
    assert limited.retry_after == 55 * 60 + 1
    assert "more than 5 reset requests per hour for this account" in (limited.reason or "")
    assert limited.expires_at is None and limited.delivery is None
    assert backend.sent == sent_before  # no email, not even a second alert

    report = await _check(client)
    assert report["attempts"] == 6 and "8.8.4.4" in report["distinct_ips"]
    contact = (await client.call_tool("get_contact", {"email": ALICE})).structured_content
    assert contact["last_reset_ip"] == "8.8.4.4"
    assert contact["recent_events"][0]["event_type"] == "reset_rate_limited"
    status = (await client.call_tool("get_send_status", {"request_id": limited.request_id})).structured_content
    assert status["status"] == "rate_limited" and status["deliveries"] == []

    clock.advance(seconds=limited.retry_after - 1)
    again = await _request(app)
    assert again.status == "rate_limited" and again.retry_after == 1
    clock.advance(seconds=1)
    assert (await _request(app)).status == "sent"  # one more fits
    assert (await _request(app)).status == "rate_limited"


async def test_the_account_limit_is_configurable(
    settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend
) -> None:
    async with build_app(settings_factory(rate_limit_account_per_hour=2), clock=clock, backend=backend) as app:
        assert [(await _request(app)).status for _ in range(3)] == ["sent", "sent", "rate_limited"]


async def test_ip_rate_limit_counts_requests_for_every_account(
    app: App, client: Client, clock: FakeClock, backend: MemoryBackend
) -> None:
    ip = "8.8.8.8"
    for i in range(20):
        out = await _request(app, email=f"user{i}@example.com", user_id=f"u-{i}", ip=ip)
        assert out.status == "sent" and out.risk == "low"
        clock.advance(seconds=30)
    limited = await _request(app, email="new@example.com", user_id="u-new", ip=ip)
    assert limited.status == "rate_limited"
    assert "more than 20 reset requests per hour for this IP address" in (limited.reason or "")
    assert limited.retry_after == 3600 - 20 * 30 + 1
    assert len(backend.sent) == 20
    other_ip = await _request(app, email="new@example.com", user_id="u-new", ip="8.8.4.4")
    assert other_ip.status == "sent"
    report = await _check(client, email="new@example.com", ip=ip)
    assert report["attempts"] == 2 and report["ip_attempts"] == 21

    clock.advance(seconds=limited.retry_after)
    assert (await _request(app, email="late@example.com", user_id="u-late", ip=ip)).status == "sent"


async def test_a_burst_of_fifty_requests_from_ten_ips_sends_exactly_one_alert(
    app: App, client: Client, clock: FakeClock, backend: MemoryBackend
) -> None:
    results = []
    for i in range(50):
        results.append(await _request(app, ip=f"8.8.{i % 10}.{i % 10 + 1}", location="Berlin, Germany"))
        clock.advance(seconds=30)
    assert [r.status for r in results] == ["sent"] * 5 + ["rate_limited"] * 45
    assert [r.alert_queued for r in results].count(True) == 1
    assert results[3].alert_queued  # the fourth request in the hour turned the account high
    alerts = [m for m in backend.sent if m.kind == "security_alert"]
    assert len(alerts) == 1 and _kinds(backend).count("password_reset") == 5
    [alert] = alerts
    assert alert.to == ALICE
    for i in range(4):  # the attempts so far, with time, IP, browser and location
        assert f"8.8.{i}.{i + 1}" in alert.text and f"8.8.{i}.{i + 1}" in alert.html
    assert "Chrome 131 on Windows 10" in alert.text and "Berlin, Germany" in alert.text
    assert "12:01 PM" in alert.text  # the fourth attempt's time (t0 + 90 s)
    assert "two-factor authentication" in alert.text and "two-factor" in alert.html
    report = await _check(client)
    assert report["attempts"] == 50 and len(report["distinct_ips"]) == 10
    assert report["risk"] == "high" and report["recommended_action"] == "block"


async def test_a_concurrent_burst_also_sends_exactly_one_alert(app: App, backend: MemoryBackend) -> None:
    results: list[Any] = []

    async def one(i: int) -> None:
        results.append(await _request(app, ip=f"8.8.{i % 10}.{i % 10 + 1}"))

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(one, i)
    assert sorted(r.status for r in results) == ["rate_limited"] * 45 + ["sent"] * 5
    assert [r.alert_queued for r in results].count(True) == 1
    assert _kinds(backend).count("security_alert") == 1 and _kinds(backend).count("password_reset") == 5


async def test_the_next_window_may_alert_again(app: App, clock: FakeClock, backend: MemoryBackend) -> None:
    for _ in range(4):
        await _request(app)
    clock.advance(minutes=61)
    for _ in range(4):
        await _request(app)
    assert _kinds(backend).count("security_alert") == 2


# --------------------------------------------------------------------------- agent alerts


async def _alert(client: Client, reason: str, email: str = ALICE) -> dict[str, Any]:
    facts = {"ip": "81.2.69.160", "user_agent": CHROME_UA}
    result = await client.call_tool("send_security_alert", {"email": email, "reason": reason, "facts": facts})
    assert not result.is_error, result.content
    return result.structured_content


async def test_send_security_alert_is_deduplicated_per_account_reason_and_window(
    client: Client, clock: FakeClock, backend: MemoryBackend
) -> None:
    first = await _alert(client, "new_device_sign_in")
    assert first["status"] == "sent" and not first["deduplicated"]
    clock.advance(minutes=30)
    again = await _alert(client, "new_device_sign_in")
    assert again["status"] == "deduplicated" and again["deduplicated"] and again["request_id"] == first["request_id"]
    assert (await _alert(client, "new_device_sign_in", "bob@example.com"))["status"] == "sent"
    assert (await _alert(client, "account_locked"))["status"] == "sent"
    assert [(m.kind, m.to) for m in backend.sent] == [
        ("security_alert", ALICE),
        ("security_alert", "bob@example.com"),
        ("security_alert", ALICE),
    ]
    # The reason in our words, and the facts as our labels: the device from our parser.
    assert "from a device we have not seen before" in backend.sent[0].text
    assert "81.2.69.160" in backend.sent[0].text and "Chrome 131 on Windows 10" in backend.sent[0].text
    clock.advance(minutes=30, seconds=1)  # the first alert left the window
    assert (await _alert(client, "new_device_sign_in"))["status"] == "sent"


async def test_send_security_alert_is_rate_limited_per_account(
    client: Client, clock: FakeClock, backend: MemoryBackend
) -> None:
    for reason in ("new_device_sign_in", "password_changed", "account_locked"):
        assert (await _alert(client, reason))["status"] == "sent"
        clock.advance(minutes=10)
    limited = await _alert(client, "other")
    assert limited["status"] == "rate_limited" and limited["retry_after"] == 30 * 60 + 1
    assert len(backend.sent) == 3
    assert (await _alert(client, "other", "bob@example.com"))["status"] == "sent"
    clock.advance(seconds=limited["retry_after"])
    assert (await _alert(client, "other"))["status"] == "sent"


# --------------------------------------------------------------------------- contact events


async def _event_count(app: App) -> int:
    async with app.store.transaction() as tx:
        return len(await tx.list_events(limit=10_000))


TOOL_REFUSALS: list[tuple[dict[str, Any], str]] = [
    ({f"k{i}": i for i in range(33)}, "metadata: at most 32 keys (got 33)"),
    ({"note": "x" * 4096}, "metadata: at most 4096 bytes in all (got 4100)"),
    ({"nested": {"a": 1}}, "metadata.nested"),  # refused by the tool's schema
    ({"list": [1, 2]}, "metadata.list"),
    ({"": "empty key"}, "metadata: keys must be 1 to 64 printable characters"),
    ({"k" * 65: 1}, "metadata: keys must be 1 to 64 printable characters"),
    ({"bad\nkey": 1}, "metadata: keys must be 1 to 64 printable characters"),
]
SERVICE_REFUSALS: list[tuple[Any, str]] = [
    # A JSON client cannot send a number key or NaN; a Python caller (REST, CLI) can.
    ({1: "x"}, "metadata: keys must be 1 to 64 printable characters"),
    ({"x": float("nan")}, "metadata.x: NaN is not allowed"),
    ({"nested": {"a": 1}}, "metadata.nested: values must be strings, numbers, booleans or null"),
    ("not a map", "metadata: must be an object"),
]


async def test_record_contact_event_refuses_metadata_beyond_bounds(app: App, client: Client) -> None:
    before = await _event_count(app)
    for metadata, message in TOOL_REFUSALS:
        result = await client.call_tool(
            "record_contact_event", {"email": ALICE, "event_type": "login_failed", "metadata": metadata}
        )
        assert result.is_error and message in result.content[0].text, message
        assert len(result.content[0].text) < 3000
    for metadata, message in SERVICE_REFUSALS:
        with pytest.raises(InvalidInputError) as caught:
            await app.service.contacts.record_event(ALICE, "login_failed", metadata)
        assert str(caught.value) == message
    assert await _event_count(app) == before  # nothing written


async def test_metadata_at_the_bounds_is_stored(app: App, client: Client) -> None:
    full = {f"k{i:02d}": i for i in range(32)}
    assert not (
        await client.call_tool("record_contact_event", {"email": ALICE, "event_type": "a", "metadata": full})
    ).is_error
    big = {"n": "x" * 4095}  # 1 + 4095 bytes: exactly 4 KB
    assert not (
        await client.call_tool("record_contact_event", {"email": ALICE, "event_type": "b", "metadata": big})
    ).is_error
    contact = (await client.call_tool("get_contact", {"email": ALICE})).structured_content
    assert [e["event_type"] for e in contact["recent_events"]] == ["b", "a"]
    assert contact["recent_events"][1]["metadata"] == {**full, "recorded_by": "stdio"}


# --------------------------------------------------------------------------- after consume, and "not me"


async def test_password_changed_notice_carries_the_consuming_ip_and_browser(
    client: Client, backend: MemoryBackend
) -> None:
    await client.call_tool("request_password_reset", reset_args())
    token = token_from(backend.sent[0])
    out = await client.call_tool("consume_reset_token", {"token": token, "ip": "8.8.4.4", "user_agent": FIREFOX_UA})
    assert out.structured_content["consumed"] and out.structured_content["notice_status"] == "sent"
    notice = backend.sent[-1]
    assert (notice.kind, notice.to) == ("password_changed", ALICE)
    for body in (notice.text, notice.html):
        assert "8.8.4.4" in body and "Firefox 133 on Linux" in body
        assert token not in body
    contact = (await client.call_tool("get_contact", {"email": ALICE})).structured_content
    consumed = next(e for e in contact["recent_events"] if e["event_type"] == "reset_consumed")
    assert consumed["ip"] == "8.8.4.4"


async def test_password_changed_notice_without_context(client: Client, backend: MemoryBackend) -> None:
    await client.call_tool("request_password_reset", reset_args())
    out = await client.call_tool("consume_reset_token", {"token": token_from(backend.sent[0])})
    assert out.structured_content["notice_status"] == "sent"
    assert backend.sent[-1].kind == "password_changed" and "198.51.100.7" not in backend.sent[-1].text


async def test_password_changed_notice_with_only_a_browser_keeps_it(client: Client, backend: MemoryBackend) -> None:
    await client.call_tool("request_password_reset", reset_args())
    out = await client.call_tool(
        "consume_reset_token", {"token": token_from(backend.sent[0]), "user_agent": FIREFOX_UA}
    )
    assert out.structured_content["notice_status"] == "sent"
    notice = backend.sent[-1]
    assert "Firefox 133 on Linux" in notice.text and "198.51.100.7" not in notice.text
    contact = (await client.call_tool("get_contact", {"email": ALICE})).structured_content
    assert "unknown" not in contact["known_ips"]


@pytest.fixture
async def report_app(
    settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend
) -> AsyncIterator[App]:
    settings = settings_factory(report_url="https://app.test/not-me?token={token}")
    async with build_app(settings, clock=clock, backend=backend) as built:
        yield built


async def test_the_wasnt_me_link_revokes_records_and_raises_risk(report_app: App, backend: MemoryBackend) -> None:
    async with client_for(report_app) as client:
        await client.call_tool("request_password_reset", reset_args())
        mail = backend.sent[0]
        token = token_from(mail)
        assert f"https://app.test/not-me?token={token}" in mail.text
        assert f"https://app.test/not-me?token={token}" in mail.html
        assert (await _check(client))["risk"] == "low"

        out = (await client.call_tool("report_unrequested_reset", {"token": token})).structured_content
        assert out["reported"] is True and out["revoked"] is True and out["risk"] == "elevated"
        assert not (await client.call_tool("verify_reset_token", {"token": token})).structured_content["valid"]
        consumed = (await client.call_tool("consume_reset_token", {"token": token})).structured_content
        assert consumed["consumed"] is False
        report = await _check(client)
        assert report["risk"] == "elevated"
        assert "the owner reported a reset they did not request" in report["reasons"]
        contact = (await client.call_tool("get_contact", {"email": ALICE})).structured_content
        assert contact["recent_events"][0]["event_type"] == "reset_reported_unrequested"
        assert token not in str(contact)


async def test_a_tampered_wasnt_me_token_is_refused(report_app: App, backend: MemoryBackend) -> None:
    async with client_for(report_app) as client:
        await client.call_tool("request_password_reset", reset_args())
        token = token_from(backend.sent[0])
        head, body, sig = token.split(".")
        forged = [
            f"{head}.{body}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}",
            f"{head}.{body[:-2]}{'AA' if body[-2:] != 'AA' else 'BB'}.{sig}",
            "not-a-token",
        ]
        before = await _event_count(report_app)
        for bad in forged:
            out = (await client.call_tool("report_unrequested_reset", {"token": bad})).structured_content
            assert out["reported"] is False and out["revoked"] is False and out["reason"]
        assert await _event_count(report_app) == before
        assert (await client.call_tool("verify_reset_token", {"token": token})).structured_content["valid"]
        assert (await _check(client))["risk"] == "low"


@pytest.mark.parametrize(
    ("reports", "attempts"),
    [(0, 3), (5, 700), (1600, 4)],  # none cut off; attempts past the limit; reports crowd out attempts
)
async def test_one_read_gives_what_two_reads_give(tmp_path: Path, reports: int, attempts: int) -> None:
    # account_report reads the window and the older attempts in one query; the result
    # must be exactly the two separate reads, including where the one read is cut off.
    from reset_mcp.store import open_store

    now = T0
    since, history_since = now - timedelta(minutes=60), now - timedelta(days=abuse.HISTORY_DAYS)
    store = await open_store(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        async with store.transaction() as tx:
            for i in range(reports):  # recent reports, newer than every attempt
                await tx.insert_event(ev((i + 1) / 60, event_type=Event.RESET_REPORTED))
            for i in range(attempts):  # attempts spread over the window and the weeks before
                kind = Event.RESET_REQUESTED if i % 2 else Event.RESET_RATE_LIMITED
                await tx.insert_event(ev(30 + 97 * i, ip=f"198.51.100.{i % 250}", event_type=kind))
        async with store.reading() as tx:
            window, older = await abuse._window_and_older(tx, ALICE, None, since, history_since)
            types = (*ATTEMPTS, Event.RESET_REPORTED)
            assert window == await tx.list_events(mailbox=ALICE, since=since, event_types=types, limit=1000)
            assert older == await tx.list_events(mailbox=ALICE, since=history_since, event_types=ATTEMPTS, limit=500)
            assert older  # the case has attempts to find
    finally:
        await store.aclose()
