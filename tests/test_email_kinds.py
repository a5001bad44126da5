"""The recipe in CONTRIBUTING.md, proved: a fifth email kind is one module (here, this file)
plus its templates, and it goes through the gate, the outbox and the admin preview with
no other file touched."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.compose.cleaning import clean_header_text
from reset_mcp.compose.i18n import Formatter, TextTranslator
from reset_mcp.compose.samples import SAMPLE_NOW
from reset_mcp.compose.views import person_name
from reset_mcp.config import Settings
from reset_mcp.deps import Caller
from reset_mcp.emails.kind import EmailKind, RenderEnv, from_ts
from reset_mcp.emails.registry import BUILTIN
from reset_mcp.errors import ConfigError, InvalidInputError
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.policy.gate import gate
from reset_mcp.server.admin.views import pending_item
from reset_mcp.store.records import SendRecord
from reset_mcp.vocab import Event, SendStatus

pytestmark = pytest.mark.anyio


# -- the kind's module: data, payload, view, samples ------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestData:
    since: datetime
    logins: int
    to_name: str | None = None


class AccountDigest(EmailKind[DigestData, DigestData]):
    name = "account_digest"
    label = "Account digest"
    subject_keys: ClassVar[tuple[str, ...]] = ("digest_subject",)
    messages: ClassVar[Mapping[str, str]] = {
        "digest_subject": "{product}: your account this week",
        "digest_intro": "Since {since} you signed in {logins} times.",
    }

    def view(self, data: DigestData, fmt: Formatter, tt: TextTranslator) -> dict[str, Any]:
        return {"name": person_name(data.to_name), "since": fmt.datetime_text(data.since), "logins": str(data.logins)}

    def samples(self) -> tuple[DigestData, DigestData]:
        return DigestData(SAMPLE_NOW, 3, "Ada"), DigestData(SAMPLE_NOW, 0)

    def load(self, payload: Mapping[str, Any]) -> DigestData:
        return DigestData(from_ts(float(payload["since"])), int(payload["logins"]), payload.get("to_name"))

    def data(self, env: RenderEnv, payload: DigestData, token: str | None, now: datetime) -> DigestData:
        return payload


DIGEST = AccountDigest()
HTML = """{% extends "base.html.j2" %}
{% block content %}
<p class="p">{% if name %}{{ t("greeting_name", name=name) }}{% else %}{{ t.greeting }}{% endif %}</p>
<p class="p">{{ t("digest_intro", since=since, logins=logins) }}</p>
{% endblock %}
"""
TEXT = """{% extends "base.txt.j2" %}
{% block content %}
{{ t("digest_intro", since=since, logins=logins) }}
{% endblock %}
"""


# -- the recipe at work -------------------------------------------------------------------------


@pytest.fixture
def with_digest(settings_factory: Callable[..., Settings], tmp_path: Path) -> Callable[..., Settings]:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "account_digest.html.j2").write_text(HTML)
    (templates / "account_digest.txt.j2").write_text(TEXT)
    return lambda **over: settings_factory(template_dir=templates, **over)


async def _send(app: App, recipient: str) -> Any:
    """What the new kind's flow does: a send record through the gate, then the fast path."""
    deps, now = app.service.deps, app.clock.now()
    payload = {"since": (now.timestamp() - 7 * 86400), "logins": 4, "to_name": "Grace"}
    async with app.store.transaction() as tx:
        gated = await gate(deps, tx, SendRecord.new(DIGEST.name, recipient, "u-9", "digest-job", payload, now), now)
    await deps.deliver(gated.rows)
    return gated


async def test_a_kind_defined_outside_the_package_is_gated_sent_and_recorded(
    with_digest: Callable[..., Settings],
) -> None:
    backend = MemoryBackend()
    async with build_app(with_digest(), clock=FakeClock(), backend=backend, kinds=(*BUILTIN, DIGEST)) as app:
        gated = await _send(app, "grace@example.com")
        assert gated.status == SendStatus.QUEUED
        [mail] = backend.sent
        assert mail.kind == "account_digest" and mail.to == "grace@example.com"
        assert mail.subject == "Acme: your account this week"
        assert "you signed in 4 times" in mail.text and "Hi Grace" in mail.html
        status = await app.service.approvals.send_status(gated.send_id)
        assert status.status == "sent" and [d.status for d in status.deliveries] == ["sent"]
        contact = await app.service.contacts.get_contact("grace@example.com")
        assert {e.event_type for e in contact.recent_events} >= {Event.EMAIL_QUEUED, Event.EMAIL_DELIVERED}
        # The policy knows the kind by name, as it knows the built-in ones.
        assert app.policy.describe()["modes"]["account_digest"] == "autonomous"


async def test_a_held_email_of_the_new_kind_is_previewed_and_released_on_approval(
    with_digest: Callable[..., Settings], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[kinds]\naccount_digest = "gated"\n')
    backend = MemoryBackend()
    settings = with_digest(policy_file=policy)
    async with build_app(settings, clock=FakeClock(), backend=backend, kinds=(*BUILTIN, DIGEST)) as app:
        gated = await _send(app, "grace@example.com")
        assert gated.status == SendStatus.PENDING_APPROVAL and backend.sent == []
        page = await app.service.admin.pending_page()
        [(view, send)] = page.pending
        item = pending_item(app, view, send, app.clock.now())
        assert item.kind_label == "Account digest" and item.subject == "Acme: your account this week"
        assert item.text is not None and "you signed in 4 times" in item.text
        assert view.summary.startswith("Account digest email to grace@example.com")
        await app.service.approvals.approve(view.id, Caller("cli:alice", frozenset({"approve"})))
        [mail] = backend.sent
        assert mail.kind == "account_digest" and "you signed in 4 times" in mail.text


async def test_a_kind_without_its_templates_or_registered_twice_is_refused_at_start(
    settings_factory: Callable[..., Settings],
) -> None:
    with pytest.raises(ConfigError, match=r"template account_digest\.html\.j2 is missing"):
        async with build_app(settings_factory(), backend=MemoryBackend(), kinds=(*BUILTIN, DIGEST)):
            pass
    with pytest.raises(ConfigError, match="registered twice"):
        async with build_app(settings_factory(), backend=MemoryBackend(), kinds=(*BUILTIN, BUILTIN[0])):
            pass


async def test_an_unknown_kind_is_named_in_the_error(app: App) -> None:
    with pytest.raises(InvalidInputError, match="unknown email kind 'account_digest'"):
        app.composer.sample("account_digest")
    assert clean_header_text(app.kinds["password_reset"].label, 80) == "Password reset"
