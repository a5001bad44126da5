"""`jsontext.encoder` writes the library's text, value for value."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reset_mcp.jsontext import encoder

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and the infinities included: both write them the same way
    st.text(),
    st.datetimes(timezones=st.just(UTC)),  # through `default`
)
KEYS = st.one_of(st.text(), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner), st.dictionaries(KEYS, inner, max_size=4)
    ),
    max_leaves=25,
)
OPTIONS = [
    {"sort_keys": True, "default": str},
    {"sort_keys": True, "ensure_ascii": True, "default": str},
    {"sort_keys": True, "ensure_ascii": False, "default": str},
    {},
]


@pytest.mark.parametrize("options", OPTIONS)
@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_the_same_text_as_the_library(options: dict[str, Any], value: Any) -> None:
    reference = json.JSONEncoder(separators=(",", ":"), **options)
    try:
        expected: str | type[Exception] = reference.encode(value)
    except (TypeError, ValueError) as exc:
        expected = type(exc)
    encode = encoder(**options)
    if isinstance(expected, str):
        assert encode(value) == expected
        assert encode(value) == expected  # nothing kept from one call to the next
    else:
        with pytest.raises(expected):
            encode(value)


def test_unencodable_values_fail_as_in_the_library() -> None:
    with pytest.raises(TypeError):
        encoder()({"at": datetime(2026, 1, 1, tzinfo=UTC)})  # no `default`
    with pytest.raises(TypeError):
        encoder(sort_keys=True)({1: 1, "a": 2})  # keys that do not sort
    assert encoder(sort_keys=True, default=str)({"b": 1, "a": datetime(2026, 1, 1, tzinfo=UTC)}) == (
        '{"a":"2026-01-01 00:00:00+00:00","b":1}'
    )


DETAILS = st.dictionaries(st.text(max_size=12), VALUES, max_size=6)


@settings(max_examples=400, deadline=None)
@given(DETAILS, st.integers(min_value=1), st.datetimes(timezones=st.just(UTC)), st.text(max_size=20))
def test_the_audit_hash_covers_the_library_json_of_the_entry(
    detail: dict[str, Any], seq: int, at: datetime, who: str
) -> None:
    # The hash body is built from the detail's own text; it must be the array's JSON as
    # `json` writes it (what entries written before were hashed over), and the text the
    # store writes for the detail must be `dump`'s.
    from reset_mcp import audit
    from reset_mcp.store import sql_common

    reference = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    try:
        whole = reference.encode([seq, round(at.timestamp(), 6), who, "act", "subj", detail])
    except (TypeError, ValueError):
        return  # keys that do not sort: no entry has them
    assert audit._message("p", seq, at, who, "act", "subj", detail, None) == f"p|{whole}".encode()
    text = audit.detail_text(detail)
    assert text == sql_common.dump(detail)
    assert audit._message("p", seq, at, who, "act", "subj", detail, text) == f"p|{whole}".encode()
