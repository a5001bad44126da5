"""A Hypothesis state machine of the token lifecycle, checked against the real service and store.

The model knows, for every link ever emailed, whether the store should hold it as
consumed, revoked, or neither, and when it expires; from that it predicts the
service's every answer:

- request (three accounts; two of them share an address): `sent` with a fresh link,
  or `rate_limited` past 5 accepted requests per address (or 20 per IP) in the hour;
  a new link revokes the same user id's earlier live links;
- verify: valid exactly when not consumed, not revoked and not expired;
- consume: wins exactly when valid, and revokes every other live link of the user id
  *or* the address (and says how many);
- revoke_reset_tokens by email, user id or both: the count of live links it killed;
- report_unrequested_reset: always recorded for a real link, even an expired one;
  `revoked` is true when the link was neither used nor already revoked;
- time passes on the fake clock (0 to 20 minutes, whole seconds).

After every step the store's rows must match the model exactly; at the end every link
is verified through the service. It runs on SQLite and, when a server is reachable,
on PostgreSQL (a fresh schema per example).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule, run_state_machine_as_test

from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.config import load_settings
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.tokens import jti_hash
from tests.conftest import CHROME_UA, SECRET, token_from
from tests.pg import fresh_schema_url, pg_database_fixture

pg_url = pg_database_fixture()

# (user_id, email): u-3 shares alice's address, so "the user's other links" differs by
# what a rule matches on (user id for a new request, user id or address for a consume).
USERS = [("u-1", "alice@example.com"), ("u-2", "bob@example.com"), ("u-3", "alice@example.com")]
IPS = ["203.0.113.1", "203.0.113.2", "2001:db8::7"]
TTL = timedelta(minutes=15)
ACCOUNT_PER_HOUR, IP_PER_HOUR = 5, 20
HOUR = timedelta(hours=1)


@dataclass
class Link:
    token: str
    jti_hash: str
    user_id: str
    email: str
    expires_at: datetime
    consumed: bool = False
    revoked: bool = False

    def valid(self, now: datetime) -> bool:
        return not self.consumed and not self.revoked and now < self.expires_at

    def revocable(self, now: datetime) -> bool:
        # revoke_tokens' condition: unused, not yet revoked, not expired.
        return not self.consumed and not self.revoked and now < self.expires_at


def machine_for(portal: BlockingPortal, new_database_url: Callable[[], str], data_root: Path) -> type:
    runs = itertools.count()

    class TokenLifecycle(RuleBasedStateMachine):
        links = Bundle("links")

        def __init__(self) -> None:
            super().__init__()
            self.clock = FakeClock()
            self.backend = MemoryBackend()
            url = new_database_url()
            app_settings = load_settings(
                data_dir=data_root / f"run-{next(runs)}",
                secret=SECRET,
                from_address="auth@acme.test",
                database_url=url,
            )
            self._app_cm = portal.wrap_async_context_manager(
                build_app(app_settings, clock=self.clock, backend=self.backend)
            )
            self.app: App = self._app_cm.__enter__()
            # The failed-check throttle (test_redeem_throttle.py) would refuse a link checked
            # more than ten times; the lifecycle, not the throttle, is modelled here.
            throttle = self.app.service.throttle
            throttle.limits = replace(throttle.limits, client=10**9, unknown_client=10**9, token=10**9)
            self.all_links: list[Link] = []
            self.accepted: list[tuple[datetime, str, str]] = []  # (when, email, ip) of sent requests

        def teardown(self) -> None:
            try:
                for link in self.all_links:  # the final word: the service's own answer for every link
                    answer = self.call(self.app.service.verify_reset_token, link.token)
                    assert answer.valid == link.valid(self.now), link
            finally:
                self._app_cm.__exit__(None, None, None)

        # helpers -----------------------------------------------------------------------
        @property
        def now(self) -> datetime:
            return self.clock.now()

        def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            return portal.call(functools.partial(fn, *args, **kwargs))

        def revoke_live(self, match: Callable[[Link], bool], keep: Link | None = None) -> int:
            killed = 0
            for link in self.all_links:
                if link is not keep and match(link) and link.revocable(self.now):
                    link.revoked = True
                    killed += 1
            return killed

        def reset_mails(self) -> list[Any]:
            return [m for m in self.backend.sent if m.kind == "password_reset"]

        # rules -------------------------------------------------------------------------
        @rule(target=links, user=st.sampled_from(USERS), ip=st.sampled_from(IPS))
        def request(self, user: tuple[str, str], ip: str) -> Any:
            user_id, email = user
            since = self.now - HOUR
            limited = (
                sum(1 for t, e, _ in self.accepted if e == email and t >= since) >= ACCOUNT_PER_HOUR
                or sum(1 for t, _, i in self.accepted if i == ip and t >= since) >= IP_PER_HOUR
            )
            before = len(self.reset_mails())
            result = self.call(self.app.service.request_password_reset, ResetInput(email, user_id, ip, CHROME_UA))
            if limited:
                assert result.status == "rate_limited" and result.retry_after and result.retry_after > 0
                assert len(self.reset_mails()) == before
                return multiple()
            assert result.status == "sent", result
            mails = self.reset_mails()
            assert len(mails) == before + 1 and mails[-1].to == email
            self.accepted.append((self.now, email, ip))
            self.revoke_live(lambda link: link.user_id == user_id)  # superseded: same user id only
            token = token_from(mails[-1])
            assert token not in result.model_dump_json()
            claims = self.app.signer.decode(token, self.now).claims
            assert claims is not None
            link = Link(token, jti_hash(claims.jti), user_id, email, self.now + TTL)
            assert result.expires_at == link.expires_at
            self.all_links.append(link)
            return link

        @rule(link=links)
        def verify(self, link: Link) -> None:
            answer = self.call(self.app.service.verify_reset_token, link.token)
            assert answer.valid == link.valid(self.now), (link, answer)
            if answer.valid:
                assert (answer.user_id, answer.email, answer.expires_at) == (link.user_id, link.email, link.expires_at)
            else:
                assert answer.user_id is None and answer.email is None  # one generic answer

        @rule(link=links)
        def consume(self, link: Link) -> None:
            expected = link.valid(self.now)
            answer = self.call(self.app.service.consume_reset_token, link.token)
            assert answer.consumed == expected, (link, answer)
            if expected:
                link.consumed = True
                killed = self.revoke_live(lambda other: other.user_id == link.user_id or other.email == link.email)
                assert answer.other_tokens_revoked == killed
                assert answer.user_id == link.user_id
            else:
                assert answer.other_tokens_revoked == 0 and answer.user_id is None

        @rule(user=st.sampled_from(USERS), by=st.sampled_from(["email", "user_id", "both"]))
        def revoke(self, user: tuple[str, str], by: str) -> None:
            user_id, email = user
            answer = self.call(
                self.app.service.revoke_reset_tokens,
                email=email if by != "user_id" else None,
                user_id=user_id if by != "email" else None,
                reason="support asked",
            )
            killed = self.revoke_live(
                lambda link: (by != "user_id" and link.email == email) or (by != "email" and link.user_id == user_id)
            )
            assert answer.revoked == killed

        @rule(link=links)
        def report(self, link: Link) -> None:
            answer = self.call(self.app.service.report_unrequested_reset, link.token)
            assert answer.reported is True  # a real link, expired or not, is always heard
            expected = not link.consumed and not link.revoked  # no expiry condition here
            assert answer.revoked == expected
            link.revoked = link.revoked or expected

        @rule(seconds=st.integers(0, 20 * 60))
        def time_passes(self, seconds: int) -> None:
            self.clock.advance(seconds=seconds)

        # the store agrees with the model, row by row -----------------------------------------
        @invariant()
        def store_matches_model(self) -> None:
            async def rows() -> list[Any]:
                async with self.app.store.transaction() as tx:
                    return [await tx.get_token(link.jti_hash) for link in self.all_links]

            for link, record in zip(self.all_links, portal.call(rows), strict=True):
                assert record is not None
                assert (record.user_id, record.email, record.expires_at) == (link.user_id, link.email, link.expires_at)
                stored = (record.consumed_at is not None, record.revoked_at is not None)
                assert stored == (link.consumed, link.revoked), (link, record)

    return TokenLifecycle


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_token_lifecycle_matches_the_model(db: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    counter = itertools.count()
    if db == "postgres":
        base = request.getfixturevalue("pg_url")

        def new_database_url() -> str:
            return fresh_schema_url(base)
    else:

        def new_database_url() -> str:
            return f"sqlite:///{tmp_path / f'model-{next(counter)}.db'}"

    with start_blocking_portal() as portal:
        machine = machine_for(portal, new_database_url, tmp_path)
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=25 if db == "sqlite" else 20,
                stateful_step_count=30,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
