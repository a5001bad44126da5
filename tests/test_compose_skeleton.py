"""Skeleton rendering (compose/skeleton.py) gives exactly what a full Jinja2 render gives.

Random values (markup, quotes, ampersands, non-ASCII, empty strings, None) in every kind
and locale, rendered by a composer with skeletons and by the same composer with them
switched off; and an override template directory switches them off.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reset_mcp.compose import SUPPORTED_LOCALES, Branding, RequestContext
from reset_mcp.compose.skeleton import SkeletonCache
from reset_mcp.emails.password_changed import PasswordChangedData
from tests.kinds import composer as make_composer
from tests.kinds import samples

BRANDING = Branding(product_name="Acme & <Co>", support_email="help@acme.example", postal_address="1 Main St")
NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

fast = make_composer(BRANDING)
slow = make_composer(BRANDING)
slow._skeletons = None  # the reference: every render through Jinja2

# Text with what escaping and cleaning act on, and sometimes nothing at all.
texts = st.one_of(st.none(), st.just(""), st.text(alphabet=st.sampled_from("ab <>&\"'é—€ \t"), max_size=30))
urls = st.sampled_from(
    [
        "https://app.example.com/reset?token=a.b-c_d",
        "https://app.example.com/r?t=x&y=1",
        "https://ex.example/%E2%82%AC?q=1",
    ]
)


def context(ip: str | None, device: str | None, location: str | None, minutes: int) -> RequestContext:
    return RequestContext(
        at=NOW - timedelta(minutes=minutes), ip=ip or "", device=device or "", location=location or ""
    )


def assert_no_fallbacks() -> None:
    # Every shape met so far has a skeleton: the equality above compared a fill, not a
    # fallback to the full render.
    assert fast._skeletons is not None
    assert None not in fast._skeletons._cache.values()


@settings(max_examples=150, deadline=None)
@given(
    locale=st.sampled_from(SUPPORTED_LOCALES),
    tz=st.sampled_from([None, "Europe/Berlin", "America/New_York"]),
    name=texts,
    ip=texts,
    device=texts,
    location=texts,
    url=urls,
    report=st.one_of(st.none(), urls),
    ttl=st.sampled_from([1, 15, 60, 1440]),
    minutes=st.integers(min_value=0, max_value=600),
)
def test_password_reset_skeleton_equals_full_render(
    locale: str,
    tz: str | None,
    name: str | None,
    ip: str | None,
    device: str | None,
    location: str | None,
    url: str,
    report: str | None,
    ttl: int,
    minutes: int,
) -> None:
    data = replace(
        samples()["password_reset"],
        reset_url=url,
        report_url=report,
        ttl_minutes=ttl,
        expires_at=NOW + timedelta(minutes=ttl),
        to_name=name,
        context=context(ip, device, location, minutes),
    )
    assert fast.render("password_reset", data, locale=locale, timezone=tz) == slow.render(
        "password_reset", data, locale=locale, timezone=tz
    )
    assert_no_fallbacks()


@settings(max_examples=60, deadline=None)
@given(locale=st.sampled_from(SUPPORTED_LOCALES), name=texts, ip=texts, with_request=st.booleans())
def test_other_kinds_equal_full_render(locale: str, name: str | None, ip: str | None, with_request: bool) -> None:
    changed = PasswordChangedData(
        changed_at=NOW, context=context(ip, "Firefox", "Berlin", 1) if with_request else None, to_name=name
    )
    assert fast.render("password_changed", changed, locale=locale) == slow.render(
        "password_changed", changed, locale=locale
    )
    for kind, data in samples().items():  # lists in the view (alerts, notices): rendered in full
        assert fast.render(kind, data, locale=locale) == slow.render(kind, data, locale=locale)
    assert_no_fallbacks()


def test_skeletons_are_used_and_reused() -> None:
    composer = make_composer(BRANDING)
    assert composer._skeletons is not None
    calls = []
    jinja = composer._jinja
    composer._jinja = lambda *a: calls.append(a) or jinja(*a)  # type: ignore[method-assign]
    data = samples()["password_reset"]
    for i in range(5):
        composer.render("password_reset", replace(data, to_name=f"User {i}"), locale="fr")
    # The first request of a shape renders twice (markers, then the check); the rest none.
    assert len(calls) == 2


def test_a_failed_check_falls_back_to_the_full_render() -> None:
    cache = SkeletonCache()
    # A "template" that transforms its value (as `|upper` would): the check must catch it.
    upper = lambda view: (view["name"].upper(), view["name"].upper())  # noqa: E731
    assert cache.render(("k",), {"name": "ada"}, upper) == ("ADA", "ADA")
    assert cache.render(("k",), {"name": "bob"}, upper) is None  # that shape renders in full from now on


def test_an_override_directory_turns_skeletons_off(tmp_path: Path) -> None:
    (tmp_path / "password_reset.txt.j2").write_text("{{ reset_url|upper }} {{ name|default('x', true)|length }}\n")
    composer = make_composer(BRANDING, tmp_path)
    assert composer._skeletons is None
    data = samples()["password_reset"]
    text = composer.render("password_reset", replace(data, to_name="Ada")).text
    assert text == data.reset_url.upper() + " 3\n"


def test_a_nul_in_a_value_is_rendered_in_full() -> None:
    cache = SkeletonCache()
    assert cache.render(("k",), {"name": "a\x00b"}, lambda v: (v["name"], v["name"])) is None
