"""Security context: User-Agent labels, special networks, offline GeoIP, location precedence.

The GeoIP tests build a real .mmdb file with mmdb-writer (a test extra in pyproject.toml)
and read it back through the production `maxminddb` reader, so the file layout, the
IPv4-in-IPv6 tree and the record decoding are all exercised for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from reset_mcp.context import (
    _CLASS_ROWS,
    Device,
    GeoLocator,
    GeoResult,
    Location,
    parse_user_agent,
    resolve_location,
    special_network,
)
from reset_mcp.errors import ConfigError

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15"
)
EDGE_WINDOWS = CHROME_WINDOWS + " Edg/131.0.0.0"
UNKNOWN = "Unknown browser on unknown OS"


# --------------------------------------------------------------------------- user agents


@pytest.mark.parametrize(
    ("user_agent", "device", "label"),
    [
        (CHROME_WINDOWS, Device("Chrome", "131", "Windows", "10"), "Chrome 131 on Windows 10"),
        (SAFARI_IPHONE, Device("Mobile Safari", "17", "iOS", "17.1"), "Mobile Safari 17 on iOS 17.1"),
        (FIREFOX_LINUX, Device("Firefox", "133", "Linux", ""), "Firefox 133 on Linux"),
        (SAFARI_MAC, Device("Safari", "17", "Mac OS X", "10.15"), "Safari 17 on Mac OS X 10.15"),
        (EDGE_WINDOWS, Device("Edge", "131", "Windows", "10"), "Edge 131 on Windows 10"),
        ("curl/8.5.0", Device("curl", "8", "unknown OS", ""), "curl 8 on unknown OS"),
    ],
)
def test_real_user_agents(user_agent: str, device: Device, label: str) -> None:
    parsed = parse_user_agent(user_agent)
    assert parsed == device
    assert parsed.label() == label


@pytest.mark.parametrize(
    "user_agent",
    ["", "   ", "asdkjh ;;; )(", "\x00\x01\x02", "\ud800\udfff", "Other", "😀" * 50, "x" * 10_000],
)
def test_unparseable_user_agents_are_unknown_and_never_raise(user_agent: str) -> None:
    device = parse_user_agent(user_agent)
    assert device == Device("Unknown browser", "", "unknown OS", "")
    assert device.label() == UNKNOWN
    assert device.family_key() == "Unknown browser/unknown OS"


def test_non_string_user_agent_is_unknown() -> None:
    assert parse_user_agent(None).label() == UNKNOWN  # type: ignore[arg-type]


def test_family_key_ignores_versions_but_tells_browsers_apart() -> None:
    older = CHROME_WINDOWS.replace("Chrome/131", "Chrome/120")
    assert parse_user_agent(older).family_key() == parse_user_agent(CHROME_WINDOWS).family_key()
    assert parse_user_agent(CHROME_WINDOWS).family_key() == "Chrome/Windows"
    assert parse_user_agent(EDGE_WINDOWS).family_key() == "Edge/Windows"


def test_ten_thousand_characters_parse_from_the_capped_prefix() -> None:
    assert parse_user_agent(CHROME_WINDOWS + " " + "x" * 10_000).label() == "Chrome 131 on Windows 10"
    # What hides past the first KiB is not read at all.
    assert parse_user_agent("x" * 10_000 + " " + CHROME_WINDOWS).label() == UNKNOWN


def test_control_characters_are_stripped_before_parsing_and_from_labels() -> None:
    injected = CHROME_WINDOWS.replace("Win64;", "Win64;\r\nX-Injected: 1\x00\u202e;")
    device = parse_user_agent(injected)
    assert device.label() == "Chrome 131 on Windows 10"
    bot = parse_user_agent("Mozilla/5.0 (compatible; Evil\u202eBot\x07/1.0)")
    for text in (bot.browser, bot.browser_version, bot.os, bot.os_version, bot.label()):
        assert text.isprintable()


def test_every_label_is_capped_at_sixty_characters() -> None:
    # ua-parser passes version digits through unbounded and echoes a crawler's own name.
    digits = "1" * 200
    curl = parse_user_agent(f"curl/{digits}")
    # A run of digits that long reads as a phone number: the version goes, the family stays.
    assert (curl.browser, curl.browser_version) == ("curl", "")
    android = parse_user_agent(
        f"Mozilla/5.0 (Linux; Android {digits}; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36"
    )
    assert (android.os, android.os_version) == ("Android", "")
    long_version = parse_user_agent("curl/8." + "1." * 40 + "1")
    assert long_version.browser == "curl" and len(long_version.label()) <= 2 * 60 + 4
    bot = parse_user_agent("Mozilla/5.0 (compatible; " + "A" * 200 + "bot/2.1; +http://example.com)")
    assert bot.browser.endswith("bot")
    assert 0 < len(bot.browser) <= 60


def test_parse_is_cached() -> None:
    assert parse_user_agent(SAFARI_IPHONE) is parse_user_agent(SAFARI_IPHONE)


# --------------------------------------------------------------------------- special networks


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", "loopback address"),
        ("127.255.0.9", "loopback address"),
        ("::1", "loopback address"),
        ("10.1.2.3", "private network"),
        ("172.16.0.1", "private network"),
        ("172.31.255.254", "private network"),
        ("192.168.1.10", "private network"),
        ("fd12:3456::1", "private network"),
        ("fec0::1", "private network"),
        ("169.254.10.20", "link-local address"),
        ("fe80::1", "link-local address"),
        ("fe80::1%eth0", "link-local address"),
        ("224.0.0.251", "multicast address"),
        ("239.255.255.250", "multicast address"),
        ("ff02::fb", "multicast address"),
        ("0.0.0.0", "unspecified address"),
        ("::", "unspecified address"),
        ("100.64.0.1", "shared address space (CGNAT)"),
        ("100.127.255.254", "shared address space (CGNAT)"),
        ("192.0.2.1", "reserved address"),
        ("198.51.100.7", "reserved address"),
        ("203.0.113.9", "reserved address"),
        ("198.18.0.1", "reserved address"),
        ("240.0.0.1", "reserved address"),
        ("255.255.255.255", "reserved address"),
        ("0.1.2.3", "reserved address"),
        ("2001:db8::1", "reserved address"),
        ("3fff::1", "reserved address"),
        ("100::1", "reserved address"),
        ("::2", "reserved address"),
        # IPv4-mapped IPv6 is judged by its IPv4 address.
        ("::ffff:127.0.0.1", "loopback address"),
        ("::ffff:192.168.0.1", "private network"),
        ("::ffff:169.254.1.1", "link-local address"),
        ("::ffff:224.0.0.1", "multicast address"),
        ("::ffff:0.0.0.0", "unspecified address"),
        ("::ffff:100.64.0.1", "shared address space (CGNAT)"),
        ("::ffff:192.0.2.1", "reserved address"),
    ],
)
def test_special_networks(address: str, expected: str) -> None:
    assert special_network(ip_address(address)) == expected


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "81.2.69.160",
        "100.63.255.255",
        "100.128.0.0",
        "172.32.0.1",
        "2606:4700:4700::1111",
        "2001:218::1",
        "64:ff9b::808:808",
        "::ffff:8.8.8.8",
    ],
)
def test_public_addresses_are_not_special(address: str) -> None:
    assert special_network(ip_address(address)) is None


# --------------------------------------------------------------------------- GeoIP

LONDON = {
    "city": {"geoname_id": 2643743, "names": {"en": "London", "de": "London"}},
    "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
    "country": {"geoname_id": 2635167, "iso_code": "GB", "names": {"en": "United Kingdom"}},
    "location": {"latitude": 51.5142, "longitude": -0.0931},
}
BAVARIA = {
    "subdivisions": [{"names": {"en": "Bavaria"}}],
    "country": {"iso_code": "de", "names": {"en": "Germany"}},
}
JAPAN = {"country": {"iso_code": "JP", "names": {"en": "Japan"}}}
# Shapes a sloppy or foreign file might hold: nothing usable may come out of them.
BROKEN = {"country": {"iso_code": "Germany", "names": "oops"}, "city": ["x"], "subdivisions": "y"}
ONLY_REGISTERED = {"registered_country": {"iso_code": "US", "names": {"en": "United States"}}}
# If a lookup ever reached these, a private address would be placed in Germany.
PRIVATE_DE = {"country": {"iso_code": "DE", "names": {"en": "Germany"}}}


def _write(path: Path, networks: dict[str, Any], *, ip_version: int = 6, kind: str = "GeoLite2-City") -> Path:
    writer = MMDBWriter(
        ip_version=ip_version,
        database_type=kind,
        languages=["en"],
        description="reset-mcp test",
        ipv4_compatible=ip_version == 6,
    )
    for network, record in networks.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def geo(tmp_path: Path) -> Iterator[GeoLocator]:
    path = _write(
        tmp_path / "city.mmdb",
        {
            "81.2.69.0/24": LONDON,
            "89.160.20.0/24": BAVARIA,
            "2001:218::/32": JAPAN,
            "175.16.199.0/24": BROKEN,
            "67.43.156.0/24": ONLY_REGISTERED,
            "10.0.0.0/8": PRIVATE_DE,
            "192.168.0.0/16": PRIVATE_DE,
            "fc00::/7": PRIVATE_DE,
            "127.0.0.0/8": PRIVATE_DE,
        },
    )
    locator = GeoLocator(path)
    yield locator
    locator.close()


def test_lookup_of_an_address_in_the_db(geo: GeoLocator) -> None:
    found = geo.lookup(ip_address("81.2.69.160"))
    assert found == GeoResult("London", "England", "United Kingdom", "GB")
    assert found is not None and found.label() == "London, United Kingdom"
    japan = geo.lookup(ip_address("2001:218:1::1"))
    assert japan == GeoResult(None, None, "Japan", "JP")
    assert japan is not None and japan.label() == "Japan"


def test_region_stands_in_for_a_missing_city(geo: GeoLocator) -> None:
    found = geo.lookup(ip_address("89.160.20.1"))
    assert found == GeoResult(None, "Bavaria", "Germany", "DE")
    assert found is not None and found.label() == "Bavaria, Germany"


def test_ipv4_mapped_ipv6_is_looked_up_as_ipv4(geo: GeoLocator) -> None:
    assert geo.lookup(ip_address("::ffff:81.2.69.1")) == geo.lookup(ip_address("81.2.69.1"))


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1"])
def test_lookup_of_an_address_not_in_the_db(geo: GeoLocator, address: str) -> None:
    assert geo.lookup(ip_address(address)) is None


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.1.1", "fd00::1", "127.0.0.1", "::ffff:10.0.0.1"])
def test_special_addresses_are_never_looked_up_even_if_the_db_has_them(geo: GeoLocator, address: str) -> None:
    assert geo.lookup(ip_address(address)) is None


def test_records_without_usable_names_give_nothing(geo: GeoLocator) -> None:
    assert geo.lookup(ip_address("175.16.199.1")) is None
    # The registered country is where the owner is, not where the user is.
    assert geo.lookup(ip_address("67.43.156.1")) is None


def test_ipv6_in_an_ipv4_only_db_is_not_found(tmp_path: Path) -> None:
    path = _write(tmp_path / "v4.mmdb", {"81.2.69.0/24": JAPAN}, ip_version=4, kind="GeoLite2-Country")
    locator = GeoLocator(path)
    assert locator.lookup(ip_address("81.2.69.5")) == GeoResult(None, None, "Japan", "JP")
    assert locator.lookup(ip_address("2001:218::1")) is None
    locator.close()


def test_disabled_and_closed_locators_find_nothing(geo: GeoLocator) -> None:
    assert GeoLocator(None).lookup(ip_address("81.2.69.160")) is None
    geo.close()
    assert geo.lookup(ip_address("81.2.69.160")) is None
    geo.close()  # closing twice is harmless


def test_invalid_file_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.mmdb"
    bad.write_bytes(b"this is not a MaxMind database\n" * 100)
    with pytest.raises(ConfigError, match=r"garbage\.mmdb: not a valid MaxMind DB file"):
        GeoLocator(bad)


def test_missing_file_and_directory_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.mmdb"):
        GeoLocator(tmp_path / "missing.mmdb")
    with pytest.raises(ConfigError, match=str(tmp_path.name)):
        GeoLocator(tmp_path)


def test_a_database_without_locations_is_refused(tmp_path: Path) -> None:
    asn_record = {"autonomous_system_number": 1}
    asn = _write(tmp_path / "asn.mmdb", {"81.2.69.0/24": asn_record}, kind="GeoLite2-ASN")
    with pytest.raises(ConfigError, match=r"asn\.mmdb.*GeoLite2-ASN"):
        GeoLocator(asn)


def test_geo_result_labels() -> None:
    assert GeoResult("Berlin", "Berlin", "Germany", "DE").label() == "Berlin, Germany"
    assert GeoResult(None, None, "Germany", "DE").label() == "Germany"
    assert GeoResult("Berlin", None, None, None).label() == "Berlin"
    assert GeoResult(None, None, None, None).label() == "unknown"


# --------------------------------------------------------------------------- resolve_location


def test_caller_location_comes_first(geo: GeoLocator) -> None:
    assert resolve_location(ip_address("81.2.69.160"), "Paris, France", geo) == Location(
        "Paris, France", None, "caller"
    )
    # A private or reserved address is named as such: no place is shown for it, whoever claims one.
    assert resolve_location(ip_address("10.0.0.1"), "Paris, France", geo) == Location(
        "private network", None, "network"
    )


@pytest.mark.parametrize(
    "claimed",
    [" Berlin\r\n\u202eBcc: x\x00 ", "A" * 500, "Office VPN", "acme-login.example.net", "Call 555 0100, USA",
     "St.Louis, USA", "Berlin, Germany, see acme.example"],
)  # fmt: skip
def test_a_caller_location_that_is_not_city_comma_country_of_letters_is_not_used(geo: GeoLocator, claimed: str) -> None:
    assert resolve_location(ip_address("81.2.69.160"), claimed, geo) == Location(
        "London, United Kingdom", "GB", "geoip"
    )


@pytest.mark.parametrize("blank", [None, "", "   ", "\t\n", "\x00\u200b"])
def test_blank_caller_location_counts_as_absent(geo: GeoLocator, blank: str | None) -> None:
    assert resolve_location(ip_address("81.2.69.160"), blank, geo) == Location("London, United Kingdom", "GB", "geoip")


def test_special_network_is_named_never_looked_up(geo: GeoLocator) -> None:
    # The file places 10/8 in Germany; the email must still say "private network".
    assert resolve_location(ip_address("10.0.0.1"), None, geo) == Location("private network", None, "network")
    assert resolve_location(ip_address("::1"), None, geo) == Location("loopback address", None, "network")


def test_geoip_then_unknown(geo: GeoLocator) -> None:
    assert resolve_location(ip_address("2001:218::5"), None, geo) == Location("Japan", "JP", "geoip")
    assert resolve_location(ip_address("8.8.8.8"), None, geo) == Location("unknown", None, "unknown")
    assert resolve_location(ip_address("81.2.69.160"), None, GeoLocator(None)) == Location("unknown", None, "unknown")
    assert resolve_location(None, None, geo) == Location("unknown", None, "unknown")


def _reference_class(ip: IPv4Address | IPv6Address) -> str | None:
    # special_network as first written, with `ipaddress` membership tests.
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for name, v4, v6 in _CLASS_ROWS:
        if any(ip in ip_network(net) for net in f"{v4} {v6}".split()):
            return name
    if isinstance(ip, IPv6Address) and not any(ip in ip_network(n) for n in ("2000::/3", "64:ff9b::/96")):
        return "reserved address"
    return None


def _edges() -> list[IPv4Address | IPv6Address]:
    """The first and last address of every block, and their neighbours."""
    nets = [ip_network(net) for _, v4, v6 in _CLASS_ROWS for net in f"{v4} {v6}".split()]
    nets += [ip_network("2000::/3"), ip_network("64:ff9b::/96")]
    kind = {4: IPv4Address, 6: IPv6Address}
    top = {4: 2**32 - 1, 6: 2**128 - 1}
    return [
        kind[net.version](min(max(int(edge) + step, 0), top[net.version]))
        for net in nets
        for edge in (net.network_address, net.broadcast_address)
        for step in (-1, 0, 1)
    ]


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.ip_addresses(),
        st.sampled_from(_edges()),
        st.integers(0, 2**32 - 1).map(lambda n: IPv6Address(0xFFFF00000000 | n)),  # IPv4-mapped
    )
)
def test_special_network_matches_ipaddress_membership(ip: IPv4Address | IPv6Address) -> None:
    assert special_network(ip) == _reference_class(ip)
