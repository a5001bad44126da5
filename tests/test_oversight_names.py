"""Policy names match recipients however they were spelled (issue 22, item 16): a
punycode (`xn--`) entry matches the Unicode address recipients are stored as, and an
address entry covers every spelling of its inbox."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reset_mcp.app import build_app
from reset_mcp.clock import FakeClock
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.policy.oversight import load_policy
from reset_mcp.vocab import Action, SendStatus
from tests.conftest import CHROME_UA

KINDS = ("password_reset",)


def _policy(tmp_path: Path, recipients: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(f"[recipients]\n{recipients}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "recipient",
    ["kunde@bücher.example", "kunde@xn--bcher-kva.example", "kunde@shop.bücher.example", "kunde@BÜCHER.example."],
)
def test_a_punycode_deny_domain_matches_every_spelling(tmp_path: Path, recipient: str) -> None:
    policy = load_policy("autonomous", _policy(tmp_path, 'deny_domains = ["xn--bcher-kva.example"]'), KINDS)
    decision = policy.decide("password_reset", recipient)
    assert decision.action == Action.BLOCK and decision.rule == "deny_domains: bücher.example"


def test_a_punycode_allow_domain_admits_the_unicode_recipient(tmp_path: Path) -> None:
    policy = load_policy("autonomous", _policy(tmp_path, 'allow_domains = ["XN--BCHER-KVA.example."]'), KINDS)
    assert policy.decide("password_reset", "kunde@bücher.example").action == Action.SEND
    assert policy.decide("password_reset", "kunde@buecher.example").action == Action.BLOCK


def test_address_entries_cover_the_inbox(tmp_path: Path) -> None:
    rules = 'deny_addresses = ["ceo@xn--bcher-kva.example", "the.boss@gmail.com"]'
    policy = load_policy("autonomous", _policy(tmp_path, rules), KINDS)
    for blocked in ["ceo@bücher.example", "ceo+x@bücher.example", "theboss@googlemail.com", "t.h.e.boss+1@gmail.com"]:
        assert policy.decide("password_reset", blocked).action == Action.BLOCK, blocked
    assert policy.decide("password_reset", "cfo@bücher.example").action == Action.SEND


async def test_the_reset_flow_blocks_a_punycode_denied_domain(
    settings_factory: Callable[..., Any], tmp_path: Path
) -> None:
    settings = settings_factory(policy_file=_policy(tmp_path, 'deny_domains = ["xn--bcher-kva.example"]'))
    backend = MemoryBackend()
    async with build_app(settings, clock=FakeClock(), backend=backend) as app:
        for email in ("kunde@bücher.example", "kunde@xn--bcher-kva.example"):
            result = await app.service.request_password_reset(ResetInput(email, "u-1", "198.51.100.7", CHROME_UA))
            assert result.status == SendStatus.BLOCKED and "deny_domains" in (result.reason or "")
    assert backend.sent == []
