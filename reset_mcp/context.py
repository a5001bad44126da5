"""Security context for a reset email (step 2 of the flow): which device asked, from where.

All offline: ua-parser reads the User-Agent; the location is the caller's, the address
class (private, loopback, ...) or an optional MaxMind-format file. No network call, so
enrichment can neither slow down nor fail a reset. Every string bound for an email is
cleaned here (non-printables out, whitespace collapsed, length capped): User-Agents and
caller text are untrusted, and a bidi override or newline could disguise the context.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_network
from pathlib import Path
from typing import Any, TypeAlias

import maxminddb
import ua_parser
from maxminddb.errors import InvalidDatabaseError
from ua_parser import Domain

from reset_mcp import untrusted
from reset_mcp.errors import ConfigError

__all__ = [
    "SPECIAL_NETWORKS",
    "Device",
    "GeoLocator",
    "GeoResult",
    "Location",
    "parse_user_agent",
    "resolve_location",
    "special_network",
]

IPAddress: TypeAlias = IPv4Address | IPv6Address

_log = logging.getLogger(__name__)

LABEL_MAX = 60
# Real User-Agents stay well under 1 KiB; parsing cost grows with length (a 10k string
# costs ~30x a capped one) and the cache keeps its keys, so the cap bounds both.
UA_PARSE_MAX = 1024
UNKNOWN_BROWSER = "Unknown browser"
UNKNOWN_OS = "unknown OS"


def _clean(text: str, limit: int) -> str:
    """Printable, single-spaced, at most `limit` characters (an ellipsis marks a cut)."""
    if not text.isprintable():
        # isprintable() is False exactly for control, format (bidi overrides, zero-width),
        # surrogate, private-use, unassigned and line/paragraph separator characters.
        text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


@dataclass(frozen=True, slots=True)
class Device:
    browser: str
    browser_version: str
    os: str
    os_version: str

    def label(self) -> str:
        return f"{self.browser} {self.browser_version}".rstrip() + f" on {self.os} {self.os_version}".rstrip()

    def family_key(self) -> str:
        # Versions are left out on purpose: a browser update must not look like a new device.
        return f"{self.browser}/{self.os}"


_UNKNOWN_DEVICE = Device(UNKNOWN_BROWSER, "", UNKNOWN_OS, "")
# Only the two domains we show: skipping device detection saves about a third of a parse.
_DOMAINS = Domain.USER_AGENT | Domain.OS


def parse_user_agent(user_agent: str) -> Device:
    """The device behind a User-Agent header; never raises, unknown parts are named so."""
    if not isinstance(user_agent, str):
        return _UNKNOWN_DEVICE
    # Truncate before the cache so its keys, and the parse cost, stay bounded.
    return _parse_cached(user_agent[:UA_PARSE_MAX])


@lru_cache(maxsize=4096)
def _parse_cached(user_agent: str) -> Device:
    # Lone surrogates make the regex engine raise; control characters only confuse it.
    text = _clean(user_agent, UA_PARSE_MAX)
    if not text:
        return _UNKNOWN_DEVICE
    try:
        result = ua_parser.parser(text, _DOMAINS)
    except Exception:  # the header is attacker-controlled; a parser bug must not fail a reset
        _log.warning("user-agent parser failed", exc_info=True)
        return _UNKNOWN_DEVICE
    browser, browser_version = UNKNOWN_BROWSER, ""
    if (ua := result.user_agent) is not None and ua.family and ua.family != "Other":
        browser, browser_version = _clean(ua.family, LABEL_MAX), _clean(ua.major or "", LABEL_MAX)
    system, system_version = UNKNOWN_OS, ""
    if (os_ := result.os) is not None and os_.family and os_.family != "Other":
        version = ".".join(part for part in (os_.major, os_.minor) if part)
        system, system_version = _clean(os_.family, LABEL_MAX), _clean(version, LABEL_MAX)
    # Some of the parser's patterns copy the header's own words into the family ("x.com/1
    # CFNetwork/1" reads as browser "x.com"): a part that carries a domain or a number
    # someone could call never reaches a label, which the owner's email shows.
    browser, browser_version = _shown(browser, browser_version, UNKNOWN_BROWSER)
    system, system_version = _shown(system, system_version, UNKNOWN_OS)
    return Device(browser or UNKNOWN_BROWSER, browser_version, system or UNKNOWN_OS, system_version)


def _shown(family: str, version: str, unknown: str) -> tuple[str, str]:
    """The family and version a label may show: a family that reads as a link goes whole, a
    version that reads as a phone number (a long run of digits) goes alone."""
    if untrusted.looks_like_contact_or_link(family):
        return unknown, ""
    if untrusted.looks_like_contact_or_link(f"{family} {version}"):
        return family, ""
    return family, version


# Explicit tables rather than ipaddress.is_private/is_global: those lists changed between
# Python patch releases (3.11.10, 3.12.4), and the email wording must not drift with them.
# The first matching row wins, so the narrow classes come before the catch-all ones.
_CLASS_ROWS = (  # name, IPv4 blocks, IPv6 blocks
    ("unspecified address", "0.0.0.0/32", "::/128"),
    ("loopback address", "127.0.0.0/8", "::1/128"),
    ("link-local address", "169.254.0.0/16", "fe80::/10"),
    ("multicast address", "224.0.0.0/4", "ff00::/8"),
    # IPv6: unique local addresses and the deprecated site-local block they replaced.
    ("private network", "10.0.0.0/8 172.16.0.0/12 192.168.0.0/16", "fc00::/7 fec0::/10"),
    ("shared address space (CGNAT)", "100.64.0.0/10", ""),
    # "This network", IETF protocol assignments, documentation, benchmarking, class E (with
    # the broadcast 255.255.255.255); documentation (RFC 3849, 9637), benchmarking, ORCHID.
    (
        "reserved address",
        "0.0.0.0/8 192.0.0.0/24 192.0.2.0/24 198.18.0.0/15 198.51.100.0/24 203.0.113.0/24 240.0.0.0/4",
        "2001:db8::/32 3fff::/20 2001:2::/48 2001:10::/28",
    ),
)
_Block = tuple[int, int, int]  # (IP version, network as an integer, netmask as an integer)


def _blocks(nets: str) -> tuple[_Block, ...]:
    # Integers, not `ip in network`: the same test (`ipaddress` compares masked
    # integers too) without its Python-level overhead, ~20 blocks a request.
    return tuple((net.version, int(net.network_address), int(net.netmask)) for net in map(ip_network, nets.split()))


_CLASSES = tuple((name, _blocks(f"{v4} {v6}")) for name, v4, v6 in _CLASS_ROWS)
# Every name `special_network` answers: labels for the overseer and the logs, which the
# emails word for an account owner instead (`compose.views`).
SPECIAL_NETWORKS: tuple[str, ...] = tuple(name for name, _, _ in _CLASS_ROWS)
# Every routable IPv6 unicast address is allocated from 2000::/3; the NAT64 well-known
# prefix is the one public block outside it. Anything else is unallocated or reserved.
_V6_PUBLIC_SPACE = _blocks("2000::/3 64:ff9b::/96")


def _in_any(version: int, n: int, blocks: tuple[_Block, ...]) -> bool:
    return any(v == version and n & mask == net for v, net, mask in blocks)


def special_network(ip: IPAddress) -> str | None:
    """The name of a non-public address class, or None for a public address."""
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1 reached over a dual-stack socket
    version, n = ip.version, int(ip)
    for name, blocks in _CLASSES:
        if _in_any(version, n, blocks):  # a v4 address is never in a v6 block
            return name
    if version == 6 and not _in_any(6, n, _V6_PUBLIC_SPACE):
        return "reserved address"
    return None


@dataclass(frozen=True, slots=True)
class GeoResult:
    city: str | None
    region: str | None
    country: str | None
    country_code: str | None

    def label(self) -> str:
        # The region stands in for a missing city: "Bavaria, Germany" beats "Germany".
        place = self.city or self.region
        return ", ".join(part for part in (place, self.country) if part) or "unknown"


def _english_name(node: Any) -> str | None:
    # The file is outside our control: check every level's type instead of trusting it.
    names = node.get("names") if isinstance(node, dict) else None
    name = names.get("en") if isinstance(names, dict) else None
    return (_clean(name, LABEL_MAX) or None) if isinstance(name, str) else None


def _geo_from_record(record: Any) -> GeoResult | None:
    if not isinstance(record, dict):
        return None
    # Only "country" (where the address is used), never "registered_country" (where its
    # owner is registered): a wrong country in a security email misleads the reader.
    country = record.get("country")
    code = country.get("iso_code") if isinstance(country, dict) else None
    if not (isinstance(code, str) and len(code) == 2 and code.isascii() and code.isalpha()):
        code = None
    subdivisions = record.get("subdivisions")
    region = _english_name(subdivisions[0]) if isinstance(subdivisions, list) and subdivisions else None
    geo = GeoResult(_english_name(record.get("city")), region, _english_name(country), code.upper() if code else None)
    return None if geo == GeoResult(None, None, None, None) else geo


class GeoLocator:
    """Offline lookup in a MaxMind-format .mmdb file (GeoLite2-City / GeoIP2-City / -Country
    layout) via the `maxminddb` reader.

    A bad file is refused at start (ConfigError), not at the first reset. Lookups take
    microseconds on the mapped file, so they run inline, even on the event loop.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._reader: maxminddb.Reader | None = None
        self._has_ipv6 = False
        if path is None:
            return
        try:
            reader = maxminddb.open_database(os.fspath(path))
        except OSError as exc:
            raise ConfigError(f"GeoIP database {path}: {exc.strerror or 'cannot be read'}") from exc
        except (InvalidDatabaseError, ValueError) as exc:
            raise ConfigError(f"GeoIP database {path}: not a valid MaxMind DB file") from exc
        kind = str(reader.metadata().database_type)
        if "city" not in kind.lower() and "country" not in kind.lower():
            reader.close()
            raise ConfigError(
                f"GeoIP database {path}: a {kind!r} database has no locations; use a City or Country database"
            )
        self._reader = reader
        # An IPv4-only file cannot answer for IPv6; knowing it up front avoids a raise per request.
        self._has_ipv6 = reader.metadata().ip_version == 6

    def lookup(self, ip: IPAddress) -> GeoResult | None:
        """Where the address is, or None: disabled, not in the file, or a special address."""
        reader = self._reader
        if reader is None or special_network(ip) is not None:
            return None  # a private address would only match whatever the file says of it
        if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # databases file IPv4 under ::/96, not under ::ffff:0:0/96
        if ip.version == 6 and not self._has_ipv6:
            return None
        try:
            record = reader.get(ip)
        except (ValueError, InvalidDatabaseError) as exc:
            # A reader closed meanwhile, or a corrupt record: a location is a nicety, so the
            # reset goes on without one.
            _log.warning("GeoIP lookup failed: %s", exc.__class__.__name__)
            return None
        return _geo_from_record(record)

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()


@dataclass(frozen=True, slots=True)
class Location:
    label: str
    country_code: str | None
    source: str  # "caller" | "geoip" | "network" | "unknown"


def resolve_location(ip: IPAddress | None, caller_location: str | None, geo: GeoLocator) -> Location:
    """The special-network name, else the caller's "City, Country", else GeoIP, else "unknown".

    A private or reserved address is named as such and nothing else: no place is shown
    for it, whoever claims one. The caller's text is used only if it passes
    `untrusted.caller_location` (letters only, one comma): anything else, a domain or a
    phone number above all, never reaches an email.
    """
    if ip is not None and (name := special_network(ip)) is not None:
        return Location(name, None, "network")
    if caller_location is not None and (place := untrusted.caller_location(caller_location)) is not None:
        # The caller (usually the app backend) may know better than a database does.
        return Location(place, None, "caller")
    if ip is not None and (found := geo.lookup(ip)) is not None:
        return Location(found.label(), found.country_code, "geoip")
    return Location("unknown", None, "unknown")
