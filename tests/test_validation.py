"""normalize_email: the per-domain fast path gives what email-validator gives, always."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from reset_mcp import validation
from reset_mcp.errors import InvalidInputError
from reset_mcp.validation import normalize_email


def library_answer(value: str) -> str:
    """The whole address through the library, as normalize_email did before the fast path."""
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        return f"refused: email: not a valid email address ({exc})"
    return result.normalized.lower()


def our_answer(value: str) -> str:
    normalize_email.cache_clear()  # the address cache would hide the path under test
    try:
        return normalize_email(value)
    except InvalidInputError as exc:
        return f"refused: {exc}"


ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
LOCAL_CHARS = ATEXT + '."@ ()<>[]\\,;:é\u00a0'
DOMAIN_CHARS = "abcxyzABC019.-_é<> @[]"
LABELS = ["example", "com", "org", "xn--bcher-kva", "xn--zz", "localhost", "test", "invalid", "a" * 63, "a" * 64, "-a"]

locals_ = st.one_of(
    st.text(ATEXT, min_size=1, max_size=70).map(lambda s: s.replace("..", ".")),
    st.text(LOCAL_CHARS, min_size=0, max_size=20),
    st.sampled_from(["postmaster", "Abuse", "a.b", ".a", "a.", "a..b", "x" * 64, "x" * 65, '"quoted"']),
)
domains = st.one_of(
    st.lists(st.sampled_from(LABELS), min_size=1, max_size=5).map(".".join),
    st.text(DOMAIN_CHARS, min_size=0, max_size=30),
    st.builds(lambda n: ".".join(["a" * 63] * n) + ".com", st.integers(1, 5)),
    st.sampled_from(["EXAMPLE.COM", "example.com.", "[127.0.0.1]", "example..com", "ex_ample.com"]),
)


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.builds(lambda lp, d: f"{lp}@{d}", locals_, domains), st.emails()))
def test_same_answer_as_the_library_for_any_address(value: str) -> None:
    if len(value) > validation.EMAIL_MAX or validation._CONTROL.search(value):
        return  # refused before either path runs
    assert our_answer(value) == library_answer(value)


@pytest.mark.parametrize(
    "value",
    [
        "Alice@Example.COM",
        "x@xn--bcher-kva.example",  # the library gives the Unicode form of a punycode domain
        f"{'a' * 61}@{'b' * 63}.{'c' * 63}.{'d' * 60}.com",  # 254 characters: at the limit
        f"{'a' * 50}@{'b' * 63}.{'c' * 63}.{'d' * 64}.com",  # a label of 64: too long
        f"{'a' * 65}@example.com",  # longer than the fast path takes, allowed by the library
        "a@localhost",  # a special-use domain the library refuses
        "a@example.invalid",
        "first.last+tag@sub.example.org",
    ],
)
def test_same_answer_at_the_edges(value: str) -> None:
    assert our_answer(value) == library_answer(value)


def test_the_library_is_asked_once_per_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(value: str, **kwargs: object) -> object:
        calls.append(value)
        return validate_email(value, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(validation, "validate_email", counting)
    validation._domain_forms.cache_clear()
    normalize_email.cache_clear()
    assert [normalize_email(f"user{i}@Example.com") for i in range(5)] == [f"user{i}@example.com" for i in range(5)]
    assert len(calls) == 1
    # An unusual address still goes to the library whole, and its refusal keeps its words.
    with pytest.raises(InvalidInputError, match="Quoting"):
        normalize_email('"a b"@example.com')
    assert calls[-1] == '"a b"@example.com'
