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
