"""The keys limits and risk count on (issue 22, items 1 and 2): one per mailbox, one per
host network; and `parse_ip` refusing zone ids."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reset_mcp.canonical import (
    DEFAULT_DOTLESS_DOMAINS,
    canonical_domain,
    canonical_mailbox,
    dotless_domain_set,
    ip_key,
)
from reset_mcp.config import load_settings
from reset_mcp.errors import ConfigError, InvalidInputError
from reset_mcp.validation import normalize_email, parse_ip

ATOM = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
TAG = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.+", min_size=0, max_size=10)


def normalized_or_none(address: str) -> str | None:
    try:
        return normalize_email(address)
    except InvalidInputError:
        return None


def dotted(parts: list[str]) -> str:
    return ".".join(parts)


def random_case(text: str, flips: list[bool]) -> str:
    return "".join(ch.upper() if flip else ch for ch, flip in zip(text, flips + [False] * len(text), strict=False))


TAGGED = st.builds(lambda local, tag, dom: f"{local}+{tag}@{dom}", ATOM, TAG, st.sampled_from(["gmail.com", "x.org"]))
DOTTED = st.builds(
    lambda parts, dom: f"{dotted(parts)}@{dom}",
    st.lists(ATOM, min_size=1, max_size=4),
    st.sampled_from(["googlemail.com", "GMail.com", "bücher.example", "xn--bcher-kva.example"]),
)


@given(address=st.one_of(st.emails(), TAGGED, DOTTED), separator=st.sampled_from(["+", "-", ""]))
def test_canonical_mailbox_is_idempotent(address: str, separator: str) -> None:
    normalized = normalized_or_none(address)
    assume(normalized is not None)
    assert normalized is not None
    once = canonical_mailbox(normalized, separator=separator)
    assert canonical_mailbox(once, separator=separator) == once
    # A key is itself a normalised address of the same mailbox's domain.
    assert normalized_or_none(once) in (once, None)


@given(
    parts=st.lists(ATOM, min_size=1, max_size=5),
    tag=st.one_of(st.none(), TAG),
    domain=st.sampled_from(["gmail.com", "googlemail.com", "GMAIL.COM", "GoogleMail.com"]),
    flips=st.lists(st.booleans(), max_size=40),
)
def test_plus_tags_dots_and_googlemail_collapse_to_one_gmail_key(
    parts: list[str], tag: str | None, domain: str, flips: list[bool]
) -> None:
    local = dotted(parts) + ("" if tag is None else "+" + tag)
    normalized = normalized_or_none(random_case(f"{local}@{domain}", flips))
    assume(normalized is not None)
    assert normalized is not None
    assert canonical_mailbox(normalized) == "".join(parts) + "@gmail.com"


@given(parts=st.lists(ATOM, min_size=2, max_size=5), domain=st.sampled_from(["example.com", "outlook.com", "x.org"]))
def test_other_domains_keep_their_dots(parts: list[str], domain: str) -> None:
    address = normalize_email(f"{dotted(parts)}@{domain}")
    assert canonical_mailbox(address) == address
    assert canonical_mailbox(normalize_email("".join(parts) + "@" + domain)) != address


@given(local=ATOM, tag=ATOM, domain=st.sampled_from(["gmail.com", "example.com"]))
def test_an_empty_separator_keeps_tags(local: str, tag: str, domain: str) -> None:
    address = normalize_email(f"{local}+{tag}@{domain}")
    assert canonical_mailbox(address, separator="") == address
    assert canonical_mailbox(address) == f"{local}@{domain}"


def test_the_issue_examples() -> None:
    # 45 emails reached one inbox through these spellings; they are one key now.
    variants = ["a.b.c@gmail.com", "abc+1@gmail.com", "A.bc+x.y@GoogleMail.com", "a.b.c+@gmail.com"]
    assert {canonical_mailbox(normalize_email(v)) for v in variants} == {"abc@gmail.com"}
    # Another separator: Postfix's `recipient_delimiter = -`.
    assert canonical_mailbox("bob-news@example.com", separator="-") == "bob@example.com"
    assert canonical_mailbox("bob+news@example.com", separator="-") == "bob+news@example.com"
    # A local part that starts with the separator is not a tag; it is kept.
    assert canonical_mailbox("+x@example.com") == "+x@example.com"
    # The dotless list is configurable; without gmail.com dots count.
    assert canonical_mailbox("a.b@gmail.com", dotless_domains=frozenset()) == "a.b@gmail.com"
    assert canonical_mailbox("a.b@corp.example", dotless_domains=frozenset({"corp.example"})) == "ab@corp.example"


def test_one_spelling_of_the_domain_unicode_no_trailing_dot() -> None:
    # Recipients are stored with Unicode domains (email-validator's normalised form), so
    # the key uses the same: an A-label input, a trailing dot and upper case all fold.
    for raw in ["bücher.example", "xn--bcher-kva.example", "XN--BCHER-KVA.example.", "BÜCHER.example."]:
        assert canonical_domain(raw) == "bücher.example", raw
        assert canonical_mailbox(f"a.b@{raw}") == "a.b@bücher.example", raw
    assert canonical_mailbox("ab@gmail.com.") == "ab@gmail.com"
    assert dotless_domain_set(" GMail.com. , xn--bcher-kva.example,,") == {"gmail.com", "bücher.example"}
    assert dotless_domain_set(["googlemail.com"]) == {"googlemail.com"}


def test_settings_configure_the_separator_and_the_dotless_list(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings()
    assert defaults.subaddress_separator == "+"
    assert defaults.dotless_domain_set == DEFAULT_DOTLESS_DOMAINS
    monkeypatch.setenv("RESET_MCP_SUBADDRESS_SEPARATOR", "")
    monkeypatch.setenv("RESET_MCP_DOTLESS_DOMAINS", "gmail.com, XN--BCHER-KVA.example")
    custom = load_settings()
    assert custom.subaddress_separator == ""
    assert custom.dotless_domain_set == {"gmail.com", "bücher.example"}
    for bad in [".", "a", "7", "@", "++", " ", "\n"]:
        monkeypatch.setenv("RESET_MCP_SUBADDRESS_SEPARATOR", bad)
        with pytest.raises(ConfigError, match="RESET_MCP_SUBADDRESS_SEPARATOR"):
            load_settings()


# --------------------------------------------------------------------------- IP keys


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("::FFFF:c000:0201", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:0db8:0001:0002:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("fe80::1", "fe80::/64"),
    ],
)
def test_ip_key(address: str, key: str) -> None:
    assert ip_key(address) == key
    assert ip_key(parse_ip(address)) == key


@given(prefix=st.integers(0, 2**64 - 1), a=st.integers(0, 2**64 - 1), b=st.integers(0, 2**64 - 1))
def test_one_slash_64_is_one_key_and_two_are_two(prefix: int, a: int, b: int) -> None:
    first, second = (ipaddress.IPv6Address(prefix << 64 | low) for low in (a, b))
    assume(first.ipv4_mapped is None and second.ipv4_mapped is None)
    assert ip_key(str(first)) == ip_key(str(second))
    neighbour = ipaddress.IPv6Address(((prefix + 1) % 2**64) << 64 | a)
    assume(neighbour.ipv4_mapped is None)
    assert ip_key(str(neighbour)) != ip_key(str(first))


@given(st.ip_addresses(v=4))
def test_ipv4_and_its_mapped_spelling_share_a_key(address: ipaddress.IPv4Address) -> None:
    assert ip_key(str(address)) == ip_key(f"::ffff:{address}") == str(address)


@pytest.mark.parametrize("address", ["fe80::1%eth0", "fe80::1%1", "2001:db8::1%wlan0", " fe80::1%eth0 "])
def test_zone_ids_are_refused_with_a_clear_error(address: str) -> None:
    with pytest.raises(InvalidInputError, match=r"^ip: an IPv6 zone id \(the part from '%'\) is not allowed$"):
        parse_ip(address)
    with pytest.raises(InvalidInputError, match="zone id"):
        ip_key(address)


@pytest.mark.parametrize(
    "address", ["203.0.113.9", " 10.0.0.1 ", "::1", "::ffff:127.0.0.1", "2001:db8::1", "fe80::1", "0.0.0.0"]
)
def test_parse_ip_is_unchanged_for_addresses_without_a_zone(address: str) -> None:
    assert parse_ip(address) == ipaddress.ip_address(address.strip())


@pytest.mark.parametrize("bad", ["", "1.2.3", "256.1.1.1", "[::1]", "1.2.3.4:80", "::1/128", "fe80::1%"])
def test_parse_ip_still_refuses_what_it_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError, match=r"^ip: not a valid IPv4 or IPv6 address$"):
        parse_ip(bad)
