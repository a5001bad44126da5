"""Property-based fuzzing of every MCP tool through the in-process client.

For each tool the live server lists, Hypothesis draws arguments from the tool's own
input schema (every property, optional ones present or absent, bounds and caps) mixed
with hostile values: text of every Unicode category (surrogates aside: JSON cannot
carry them), empty strings, strings at, just over and far over the schema's caps,
CR/LF, NUL, bidi overrides and zero-width characters, template and SQL syntax, wide,
oversized or deeply nested metadata, numbers at and beyond their bounds, wrong types,
missing required and unknown extra arguments.

What must hold for every call:
- the answer is a result or a clear tool error: `Error executing tool <name>: <why>`,
  never the SDK's opaque bare `Error executing tool <name>` (an unexpected exception),
  never a traceback;
- a refused call (a tool error) writes nothing: the row counts of every table are
  unchanged and no email left. Refusals that are answers rather than errors are held
  precisely: an invalid token's verify or consume writes exactly one audit entry
  (`verify_refused` / `consume_refused`), an invalid report writes nothing, a
  deduplicated or rate-limited alert writes nothing, and the read-only tools never
  write at all;
- the reset link never appears in what the agent gets back.

The suite runs on SQLite; on PostgreSQL too (fewer examples) when a server is
reachable, since PostgreSQL refuses some text SQLite takes (NUL characters).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp_types import CallToolResult

from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.config import Settings, load_settings
from reset_mcp.errors import InvalidInputError
from reset_mcp.flows.views import VALUE_CAP
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.tokens import TokenClaims
from reset_mcp.untrusted import as_data
from tests.conftest import SECRET, client_for, reset_args, token_from
from tests.pg import fresh_schema_url, pg_database_fixture

pg_url = pg_database_fixture()
TOOLS = sorted(p.stem for p in (Path(__file__).parent.parent / "tool_schemas").glob("*.json"))
TABLES = ("sends", "tokens", "outbox", "approvals", "events", "audit", "api_keys")
READ_ONLY = {
    "check_reset_abuse",
    "get_contact",
    "list_pending_sends",
    "get_send_status",
    "get_delivery_status",
    "preview_email",
}
EXAMPLES = {"sqlite": 30, "postgres": 10}
EXTRA_EXAMPLES = {"request_password_reset": 15, "record_contact_event": 15}

# --- hostile values ---------------------------------------------------------------------

SPECIAL = [
    "", " ", "\t", "\r\n", "\n", "\r", "\x00", "\x7f", "\x1b[31m", "\u0085", "\u2028", "\u2029",
    "\u202e", "\u202d", "\u2066", "\u2069", "\u200b", "\u200f", "\ufeff", "\u0301" * 40, "\U0001f600",
    "\U000e0041", "ﷺ", "Ω≈ç√", "é", "ǅ", "\u00a0", "\u3000",
    "<script>alert(1)</script>", "\"'><img src=x onerror=alert(1)>", "{{ 7*7 }}", "{% raw %}", "${jndi:ldap://x}",
    "'; DROP TABLE tokens; --", "%s%n%x", "../../etc/passwd", "\\", "null", "None", "NaN", "-0",
    "a\r\nBcc: evil@example.com", "=?utf-8?b?PHNjcmlwdD4=?=", "alice@example.com\r\nBcc: eve@example.com",
    "https://evil.example/reset?token=x", "javascript:alert(1)",
]  # fmt: skip
CORPUS_TEXT = [
    "", " ", "\x00", "a\x00b", "\r\n", "a\r\nBcc: evil@example.com", "\u202e", "\u200b", "\ufeff", "\u2028",
    "<script>alert(1)</script>", "{{ 7*7 }}", "'; DROP TABLE tokens; --", "\U0001f600", "é\u0301",
]  # fmt: skip
INJECTIONS = ["\r\n", "\n", "\r", "\x00", "\u202e", "\u2066", "\u200b", "\x1b", "\u2028", "\t", "<", "{{"]
REPEATED = ["a", "é", "\U0001f600", "\x00", "\n", "\u202e", " ", "<"]


def _sizes(cap: int) -> list[int]:
    return sorted({0, 1, max(cap - 1, 0), cap, cap + 1, cap * 2, cap * 10})


def nasty_text(cap: int | None) -> st.SearchStrategy[str]:
    """Text of every category (no surrogates), specials, injections, and sizes around `cap`."""
    limit = cap or 5000
    return st.one_of(
        st.text(max_size=min(limit, 120)),
        st.text(st.characters(codec="utf-8"), max_size=min(limit, 40)),
        st.sampled_from(SPECIAL),
        st.builds(lambda a, s, b: a + s + b, st.text(max_size=20), st.sampled_from(INJECTIONS), st.text(max_size=20)),
        st.builds(lambda ch, n: ch * n, st.sampled_from(REPEATED), st.sampled_from(_sizes(limit))),
    )


def emails() -> st.SearchStrategy[str]:
    local = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=12)
    return st.one_of(
        st.emails(),
        st.builds(lambda lp, d: f"{lp}@{d}", local, st.sampled_from(["example.com", "EXAMPLE.org", "bücher.de"])),
        st.builds(lambda e, s: e + s, st.emails(), st.sampled_from(INJECTIONS)),
        st.builds(lambda n: "a" * n + "@example.com", st.sampled_from([50, 64, 65, 240, 250, 320, 400])),
        nasty_text(320),
    )


def ips() -> st.SearchStrategy[str]:
    odd = [
        "::ffff:127.0.0.1", "0.0.0.0", "255.255.255.255", " 10.0.0.1 ", "1.2.3", "01.02.03.04", "::",
        "fe80::1%eth0", "fe80::1%\u202e", "1.2.3.4\x00", "[::1]", "1.2.3.4:80", "::1/128", "256.1.1.1",
    ]  # fmt: skip
    return st.one_of(st.ip_addresses().map(str), st.sampled_from(odd), nasty_text(64))


def integers_at(lo: int | None, hi: int | None) -> st.SearchStrategy[Any]:
    lo = -(2**63) if lo is None else lo
    hi = 2**63 if hi is None else hi
    edges = [lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, 0, -1, 2**31, 2**63, 2**64, -(2**63), 10**30]
    return st.one_of(
        st.sampled_from(edges),
        st.integers(lo, hi),
        st.integers(),
        st.floats(),  # NaN, infinities, fractions: refused by the schema, or whole and accepted
        st.sampled_from([True, False, "5", "60", "", None]),
    )


# The SDK client's serializer stops at about 253 levels: deeper cannot even be sent.
DEPTH = 250


def _nest(depth: int, leaf: Any, as_list: bool) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if as_list else {"k": value}
    return value


def metadata() -> st.SearchStrategy[Any]:
    scalar = st.one_of(
        st.none(), st.booleans(), st.integers(), st.sampled_from([2**64, -(2**70), 10**40]), st.floats(),
        nasty_text(300),
    )  # fmt: skip
    key = st.one_of(st.text(max_size=70), st.sampled_from(SPECIAL))
    return st.one_of(
        st.none(),
        st.dictionaries(key, scalar, max_size=40),  # the cap is 32 keys
        st.builds(lambda n, v: {f"k{i}": v for i in range(n)}, st.sampled_from([31, 32, 33, 100, 1000]), scalar),
        st.builds(lambda n: {"a": "x" * n}, st.sampled_from([4000, 4094, 4095, 4096, 4097, 50_000])),
        st.builds(lambda n: {"k" * 64: "v" * n}, st.sampled_from([4000, 4031, 4032, 4033])),
        st.builds(_nest, st.integers(1, DEPTH), scalar, st.booleans()).map(lambda v: {"deep": v}),
        st.builds(_nest, st.integers(1, DEPTH), scalar, st.booleans()),  # not even an object
        st.recursive(scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3)),
    )


JUNK = [123, -1.5, True, None, [], {}, ["x"], {"a": 1}, "x" * 100_000, float("inf")]


def jwt_like() -> st.SearchStrategy[str]:
    seg = st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode())
    return st.builds(lambda a, b, c: f"{a}.{b}.{c}", seg, seg, seg)


def forged_tokens(app: App) -> list[str]:
    """Tokens that look right but must never be accepted: wrong algorithms, keys, claims."""
    now = app.clock.now()
    claims = {"sub": "u-1", "email": "alice@example.com", "jti": "j" * 43, "purpose": "password_reset"}
    times = {"iat": int(now.timestamp()), "exp": int((now + timedelta(minutes=15)).timestamp())}
    kid = {"kid": app.signer.kid}
    return [
        jwt.encode({**claims, **times}, None, algorithm="none", headers=kid),  # type: ignore[arg-type]
        jwt.encode({**claims, **times}, "x" * 64, algorithm="HS256", headers=kid),
        jwt.encode({**claims, **times}, "x" * 64, algorithm="HS512", headers=kid),
        jwt.encode({**claims, **times}, "x" * 64, algorithm="HS256", headers={**kid, "crit": ["exp"]}),
        jwt.encode({**claims, **times}, "x" * 64, algorithm="HS256"),  # no kid
    ]


def minted(app: App) -> st.SearchStrategy[str]:
    """Correctly signed tokens with hostile claims: no store record, so never valid."""

    def mint(user: str, email: str, jti: str, minutes: int) -> str:
        now = app.clock.now().replace(microsecond=0)
        return app.signer.mint(
            TokenClaims(jti, user, email, now, now + timedelta(minutes=minutes), app.signer.kid)  # type: ignore[arg-type]
        )

    text = nasty_text(80)
    return st.builds(mint, text, text, text, st.integers(-30, 60))


def mutated(token: str) -> st.SearchStrategy[str]:
    def flip(i: int, ch: str) -> str:
        i %= len(token)
        return token[:i] + ch + token[i + 1 :]

    return st.one_of(
        st.builds(flip, st.integers(0, len(token) - 1), st.sampled_from("AZaz09-_.=\x00")),
        st.builds(lambda n: token[:n], st.integers(0, len(token))),
        st.builds(lambda s: token + s, st.sampled_from(["", ".", "=", "\n", "\x00", "a"])),
    )


# --- the harness ------------------------------------------------------------------------


@dataclass
class Harness:
    portal: BlockingPortal
    app: App
    client: Client
    backend: MemoryBackend
    clock: FakeClock
    schemas: dict[str, dict[str, Any]]
    seeds: dict[str, list[str]]
    db: str = "sqlite"

    def counts(self) -> dict[str, int]:
        sql = "SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {t}) AS {t}" for t in TABLES)

        async def count() -> dict[str, int]:
            async with self.app.store.transaction() as tx:
                row = await tx._one(sql)  # type: ignore[attr-defined]
            return {t: int(row[t]) for t in TABLES}

        return self.portal.call(count)

    def last_audit_action(self) -> str:
        async def last() -> str:
            async with self.app.store.transaction() as tx:
                return (await tx.list_audit(limit=1, newest=True))[0].action

        return self.portal.call(last)

    def call(self, tool: str, args: dict[str, Any]) -> CallToolResult:
        before, sent_before = self.counts(), len(self.backend.sent)
        result = self.portal.call(self.client.call_tool, tool, args)
        after = self.counts()
        delta = {t: after[t] - before[t] for t in TABLES if after[t] != before[t]}
        new_mail = self.backend.sent[sent_before:]
        shown = json.dumps([c.model_dump(mode="json") for c in result.content], ensure_ascii=False)
        for mail in new_mail:  # the link is in the email, never in the answer
            if mail.kind == "password_reset":
                assert token_from(mail) not in shown
                assert token_from(mail) not in json.dumps(result.structured_content)
        if result.is_error:
            text = result.content[0].text  # type: ignore[union-attr]
            prefix = f"Error executing tool {tool}: "
            assert text.startswith(prefix), f"opaque or foreign error for {tool}: {text[:300]!r}"
            assert text[len(prefix) :].strip(), f"bare error for {tool}"
            assert "Traceback" not in text and "Error executing tool" not in text[len(prefix) :]
            assert len(text) < 100_000
            # The database is up throughout: "unavailable" would mean input reached the driver
            # unchecked and was refused there (PostgreSQL and NUL, once), misleading the agent.
            assert "database is unavailable" not in text, f"{tool} input reached the driver: {args!r:.300}"
            assert delta == {}, f"refused {tool} call wrote {delta}: {text[:200]!r}"
            assert new_mail == [], f"refused {tool} call sent email"
            return result
        out = result.structured_content
        assert isinstance(out, dict), f"{tool} answered without structured content"
        if tool in READ_ONLY:
            assert delta == {} and new_mail == [], f"read-only {tool} wrote {delta}"
        elif tool in ("verify_reset_token", "consume_reset_token") and not out.get("valid", out.get("consumed")):
            assert delta == {"audit": 1} and new_mail == [], f"refused {tool} wrote {delta}"
            assert self.last_audit_action() == tool.split("_")[0] + "_refused"
        elif tool == "report_unrequested_reset" and not out["reported"]:
            assert delta == {} and new_mail == []
        elif tool == "send_security_alert" and out["status"] in ("deduplicated", "rate_limited"):
            assert delta == {} and new_mail == [], f"{out['status']} alert wrote {delta}"
        elif tool == "request_password_reset" and out["status"] == "rate_limited":
            assert delta.get("tokens", 0) == 0 and not [m for m in new_mail if m.kind == "password_reset"]
        elif tool == "record_contact_event":
            # What was accepted is what is read back (an infinity once came back as null).
            contact = self.portal.call(self.client.call_tool, "get_contact", {"email": out["email"]})
            latest = contact.structured_content["recent_events"][0]  # type: ignore[index]
            assert latest["event_type"] == out["event_type"]
            # metadata=inf itself travels as null, which the tool takes for "no metadata". Text
            # comes back as data: one line, nothing invisible, capped (untrusted.as_data).
            sent = {
                as_data(k, 64): as_data(v, VALUE_CAP) if isinstance(v, str) else _as_json_sends(v)
                for k, v in (_as_json_sends(args.get("metadata")) or {}).items()
            }
            assert latest["metadata"] == {**sent, "recorded_by": "stdio"}
        return result


def _as_json_sends(value: Any) -> Any:
    # The client's JSON carries NaN and infinities as null.
    return None if isinstance(value, float) and not math.isfinite(value) else value


@asynccontextmanager
async def _running(settings: Settings, clock: FakeClock, backend: MemoryBackend) -> Any:
    async with build_app(settings, clock=clock, backend=backend) as app, client_for(app) as client:
        yield app, client


@contextmanager
def harness(settings: Settings, clock: FakeClock, backend: MemoryBackend) -> Iterator[Harness]:
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(_running(settings, clock, backend)) as (app, client),
    ):
        # The failed-check throttle (tested in test_security_checklist and test_redeem_throttle)
        # would soon answer every token call before the decoder runs: lift it for the fuzzer.
        throttle = getattr(app.service, "throttle", None)
        if throttle is not None:
            throttle.limits = replace(throttle.limits, client=10**9, unknown_client=10**9, token=10**9)
        tools = portal.call(client.list_tools).tools
        schemas = {t.name: t.input_schema for t in tools}
        # Real state to aim at: two requests (the first link superseded, the second live).
        ids = []
        for user in ("u-seed", "u-seed"):
            result = portal.call(client.call_tool, "request_password_reset", reset_args(user_id=user))
            ids.append(result.structured_content["request_id"])  # type: ignore[index]
        tokens = [token_from(m) for m in backend.sent if m.kind == "password_reset"]
        yield Harness(portal, app, client, backend, clock, schemas, {"request_id": ids, "token": tokens})


# --- strategies from the live schemas -------------------------------------------------------


def value_for(name: str, prop: dict[str, Any], h: Harness) -> st.SearchStrategy[Any]:
    if prop.get("anyOf"):
        branches = [b for b in prop["anyOf"] if b.get("type") != "null"]
        outer = {k: v for k, v in prop.items() if k != "anyOf"}  # a nested anyOf (string or integer) recurses
        inner = [value_for(name, {**outer, **b}, h) for b in branches]
        return st.one_of(st.none(), *inner) if len(branches) < len(prop["anyOf"]) else st.one_of(*inner)
    if prop.get("enum"):
        return st.one_of(st.sampled_from(prop["enum"]), nasty_text(40))
    kind = prop.get("type")
    if kind == "integer":
        return integers_at(prop.get("minimum"), prop.get("maximum"))
    if kind == "object":
        return metadata()
    cap = prop.get("maxLength")
    if name == "email":
        return emails()
    if name == "ip":
        return ips()
    if name == "token":
        real = h.seeds["token"]
        return st.one_of(
            nasty_text(cap),
            jwt_like(),
            st.sampled_from(real),
            mutated(real[-1]),
            minted(h.app),
            st.sampled_from(forged_tokens(h.app)),
        )
    if name == "request_id":
        return st.one_of(st.sampled_from(h.seeds["request_id"]), nasty_text(cap))
    if name == "user_agent":
        return st.one_of(st.just(reset_args()["user_agent"]), nasty_text(cap))
    return nasty_text(cap)


@st.composite
def arguments(draw: st.DrawFn, tool: str, h: Harness) -> dict[str, Any]:
    schema = h.schemas[tool]
    props: dict[str, dict[str, Any]] = schema.get("properties", {})
    required = set(schema.get("required", []))
    args: dict[str, Any] = {}
    for name, prop in props.items():
        if name in required or draw(st.booleans()):
            args[name] = draw(value_for(name, prop, h))
    twist = draw(st.integers(0, 9))
    if twist == 0 and props:  # a wrong type for one argument
        args[draw(st.sampled_from(sorted(props)))] = draw(st.sampled_from(JUNK))
    elif twist == 1 and required:  # a required argument missing
        args.pop(draw(st.sampled_from(sorted(required))), None)
    elif twist == 2:  # an argument the tool does not have
        args[draw(st.sampled_from(["extra", "token", "__proto__", "ctx", "confirmation"]))] = "x"
    return args


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fuzzed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """One server per database for the whole module: every call is judged on its own deltas."""
    over: dict[str, Any] = {}
    if request.param == "postgres":
        over["database_url"] = fresh_schema_url(request.getfixturevalue("pg_url"))
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp(f"fuzz-{request.param}"), secret=SECRET, from_address="auth@acme.test", **over
    )
    with harness(settings, FakeClock(), MemoryBackend()) as h:
        h.db = request.param
        yield h


def test_every_listed_tool_is_fuzzed(fuzzed: Harness) -> None:
    assert set(fuzzed.schemas) == set(TOOLS)


@pytest.mark.parametrize("tool", TOOLS)
def test_fuzz_tool(tool: str, fuzzed: Harness) -> None:
    h = fuzzed

    @settings(
        max_examples=EXAMPLES[h.db] + EXTRA_EXAMPLES.get(tool, 0),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(args=arguments(tool, h), minutes=st.sampled_from([0, 0, 1, 61]))
    def one_call(args: dict[str, Any], minutes: int) -> None:
        h.clock.advance(minutes=minutes)  # sometimes out of the rate limits' hour, sometimes not
        h.call(tool, args)

    one_call()


# --- a fixed corpus, every hostile value in every argument ------------------------------------


def valid_args(tool: str, h: Harness) -> dict[str, Any]:
    """Arguments the tool accepts, to vary one at a time."""
    schema = h.schemas[tool]
    base: dict[str, Any] = {}
    for name in schema.get("required", []):
        prop = schema["properties"][name]
        base[name] = {
            "email": "carol@example.com",
            "ip": "203.0.113.5",
            "user_agent": reset_args()["user_agent"],
            "token": h.seeds["token"][-1],
            "request_id": h.seeds["request_id"][-1],
        }.get(name, prop["enum"][0] if "enum" in prop else "x")
    if tool in ("check_reset_abuse", "revoke_reset_tokens"):
        base["user_id"] = "u-carol"
    return base


def _branches(prop: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives of a schema, nested anyOf flattened, each with the outer constraints."""
    if not prop.get("anyOf"):
        return [prop]
    outer = {k: v for k, v in prop.items() if k != "anyOf"}
    return [leaf for b in prop["anyOf"] for leaf in _branches({**outer, **b})]


def corpus(prop: dict[str, Any]) -> list[Any]:
    """Hostile values for one argument: specials, and sizes at and around its cap."""
    kinds = {b.get("type") for b in _branches(prop)}
    if "integer" in kinds and "string" in kinds:  # an id: text, or a whole number taken as its text
        cap = next((b["maxLength"] for b in _branches(prop) if "maxLength" in b), 5000)
        return [*CORPUS_TEXT, "a" * cap, "a" * (cap + 1), 0, -1, 42, 2**63, 2**64, 10**300, 1.5, True, None, ["x"]]
    if "integer" in kinds:
        lo, hi = prop["minimum"], prop["maximum"]
        return [lo - 1, lo, hi, hi + 1, 0, -1, 2**63, 2**64, 1.5, float("inf"), float("nan"), "7", True, None]
    if "object" in kinds:
        return [
            {}, {"x": None}, {"": 1}, {"k\n": 1}, {"k": float("inf")}, {"k": float("nan")}, {"k": 2**64},
            {f"k{i}": i for i in range(33)}, {"k": "v" * 4096}, {"k": {"nested": 1}}, {"k": [1]},
            {"deep": _nest(DEPTH, 1, False)}, [], "x",
        ]  # fmt: skip
    cap = next((b["maxLength"] for b in prop.get("anyOf") or [prop] if "maxLength" in b), 5000)
    sized = [ch * n for ch in ("a", "\U0001f600") for n in (cap, cap + 1)]
    return [*CORPUS_TEXT, *sized, 5, None, ["x"]]


@pytest.mark.parametrize("tool", TOOLS)
def test_hostile_corpus(tool: str, fuzzed: Harness) -> None:
    h = fuzzed
    base = valid_args(tool, h)
    h.clock.advance(minutes=61)
    accepted = h.call(tool, base)
    assert not accepted.is_error, accepted.content
    for name, prop in h.schemas[tool]["properties"].items():
        for value in corpus(prop):
            h.clock.advance(minutes=61)  # out of every rate limit's hour: each value is judged on its own
            h.call(tool, {**base, name: value})


async def test_metadata_refuses_non_finite_numbers(app: App) -> None:
    """NaN and infinities come back as null from JSON output, so they are refused on the way in.

    The SDK client sends them as null, but the server's JSON parser accepts the bare
    `NaN` / `Infinity` literals a hand-written client might send, so the service checks.
    """
    for value in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(InvalidInputError, match=r"metadata\.k"):
            await app.service.contacts.record_event("a@example.com", "login_failed", {"k": value})
    async with app.store.transaction() as tx:
        assert await tx.list_events(mailbox="a@example.com") == []
