"""The keys that limits and risk count on: one per mailbox, one per host network.

An email still goes to the address given; these keys only decide what counts as "the
same account" or "the same client" for rate limits and the abuse verdict. Without
them one inbox is many keys (`a+1@gmail.com`, `a.b@gmail.com`, `ab@googlemail.com`)
and one host is many addresses (the IPv6 addresses of its /64, `::ffff:` spellings).

Both are pure. `canonical_mailbox` is idempotent (a key fed back in comes out unchanged).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from reset_mcp.errors import InvalidInputError
from reset_mcp.validation import parse_ip, unicode_domain

# Providers that ignore dots in the local part (and deliver `a.b@` to `ab@`).
DEFAULT_DOTLESS_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
# Domains that are one mailbox namespace under another name.
DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}
DEFAULT_SEPARATOR = "+"
IPV6_GROUP_PREFIX = 64  # one subscriber's network: ISPs hand out a /64 (or more) per customer


def canonical_domain(domain: str) -> str:
    """One spelling of a domain: Unicode labels (as recipients are stored), lower case,
    no trailing dot. IDNA A-labels (`xn--...`) become their U-labels."""
    domain = domain.strip().rstrip(".").lower()
    return unicode_domain(domain) or domain


def dotless_domain_set(domains: Iterable[str] | str) -> frozenset[str]:
    """A configured list (an iterable, or one comma-separated string) in canonical form."""
    items = domains.split(",") if isinstance(domains, str) else domains
    return frozenset(canonical_domain(d) for d in items if d.strip().rstrip("."))


@functools.lru_cache(maxsize=4096)  # pure, and asked five times in one reset (flow, gate, outbox, outcome)
def canonical_mailbox(
    normalized_email: str,
    *,
    separator: str = DEFAULT_SEPARATOR,
    dotless_domains: frozenset[str] = DEFAULT_DOTLESS_DOMAINS,
) -> str:
    """The mailbox an address reaches, as a key for counting (never for sending).

    `normalized_email` is what `validation.normalize_email` returns. The domain gets one
    spelling (`canonical_domain`) and its alias folded (googlemail.com is gmail.com); the
    subaddress from the first `separator` on is dropped (an empty separator keeps it; a
    local part that starts with the separator is not a tagged address and is kept); dots
    in the local part are dropped for `dotless_domains` (given in canonical form, see
    `dotless_domain_set`).
    """
    local, at, domain = normalized_email.rpartition("@")
    if not at or not local:
        return normalized_email.lower()
    local = local.lower()
    spelled = canonical_domain(domain)
    domain = DOMAIN_ALIASES.get(spelled, spelled)
    # Either name in the list makes the mailbox dotless, so the alias cannot undo it.
    dotless = spelled in dotless_domains or domain in dotless_domains
    if separator and separator in local:
        base = local.split(separator, 1)[0]
        local = base or local
    if dotless:
        local = local.replace(".", "") or local
    return f"{local}@{domain}"


def ip_key(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The network an address counts for: an IPv4 address as it is (an IPv4-mapped IPv6
    address `::ffff:a.b.c.d` too), an IPv6 address as its /64 (`2001:db8:1:2::/64`).

    A string goes through `parse_ip`, so a zone id (`fe80::1%eth0`) is refused with
    InvalidInputError; an address object's zone, if any, is dropped.
    """
    addr = parse_ip(ip) if isinstance(ip, str) else ip
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        shift = 128 - IPV6_GROUP_PREFIX
        return f"{ipaddress.IPv6Address(int(addr) >> shift << shift)}/{IPV6_GROUP_PREFIX}"
    return str(addr)


def net_of_stored(ip: str | None) -> str | None:
    """`ip_key` of an address as the store holds it (already parsed once), None for none;
    anything unparsable keys as itself (rows written by other code stay countable)."""
    if not ip:
        return None
    try:
        return ip_key(ip)
    except InvalidInputError:
        return ip


@dataclass(frozen=True, slots=True)
class Canon:
    """The configured keys (`RESET_MCP_SUBADDRESS_SEPARATOR`, `RESET_MCP_DOTLESS_DOMAINS`)."""

    separator: str = DEFAULT_SEPARATOR
    dotless_domains: frozenset[str] = DEFAULT_DOTLESS_DOMAINS

    def mailbox(self, normalized_email: str) -> str:
        return canonical_mailbox(normalized_email, separator=self.separator, dotless_domains=self.dotless_domains)

    @staticmethod
    def net(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
        return ip_key(ip)
