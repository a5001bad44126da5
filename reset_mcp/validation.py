"""Input checks shared by every entry point (tools, REST, CLI); each raises InvalidInputError.

Refuse rather than repair: a name with a line break is an injection attempt or a bug,
and either way the caller should hear about it before anything is written.
"""

from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
from functools import lru_cache
from typing import Any

from email_validator import EmailNotValidError, validate_email

from reset_mcp.errors import InvalidInputError

# C0 and C1 controls (C1 holds U+0085 NEXT LINE, a line break to Unicode and to
# str.splitlines), and the line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
EMAIL_MAX = 254


# The usual address: an ASCII dot-atom local part (RFC 5322 3.2.3) and a domain of
# letters, digits, hyphens and dots. Only such an address takes the fast path below.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LDH_DOMAIN = re.compile(r"[A-Za-z0-9.-]+")
_LOCAL_MAX = 64


@lru_cache(maxsize=1024)
def _domain_forms(domain: str) -> tuple[str, str] | None:
    """email-validator's (normalised, IDNA ASCII) forms of a domain, or None if it refuses it.

    Most of the library's time goes on the domain (its IDNA checks run per character), and
    domains repeat across users while addresses do not; so the verdict is asked once per
    domain, of an address whose local part cannot sway it.
    """
    try:
        result = validate_email("a@" + domain, check_deliverability=False)
    except EmailNotValidError:
        return None
    return result.domain, result.ascii_domain


def _fast_normalized(value: str) -> str | None:
    """What `validate_email(value).normalized` is, for the usual address; None otherwise.

    For a dot-atom local part the library returns it as it is; what it does with the
    domain depends on the domain alone; and the only check of the whole address is its
    length in the three forms `validate_email_length` measures. Anything unusual (quotes,
    display names, non-ASCII, a long local part, a refused domain) returns None, and the
    caller asks the library about the whole address, so its refusals keep its wording.
    """
    local, _, domain = value.rpartition("@")
    if len(local) > _LOCAL_MAX or not _DOT_ATOM.fullmatch(local) or not _LDH_DOMAIN.fullmatch(domain):
        return None
    forms = _domain_forms(domain)
    if forms is None:
        return None
    normalized = f"{local}@{forms[0]}"
    if len(normalized.encode()) > EMAIL_MAX or len(local) + 1 + len(forms[1]) > EMAIL_MAX:
        return None
    return normalized


def unicode_domain(domain: str) -> str | None:
    """email-validator's normalised form of a domain (Unicode labels, lower case), or None
    if it refuses the domain. `xn--` labels come back as the Unicode they encode."""
    forms = _domain_forms(domain)
    return forms[0] if forms else None


@lru_cache(maxsize=8192)
def normalize_email(value: str) -> str:
    """Validated and normalised (domain lower-cased, IDNA); no DNS lookup."""
    if not isinstance(value, str) or len(value) > EMAIL_MAX or _CONTROL.search(value):
        raise InvalidInputError("email: not a valid email address")
    normalized = _fast_normalized(value)
    if normalized is None:
        try:
            normalized = validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise InvalidInputError(f"email: not a valid email address ({exc})") from None
    # Local parts are case-sensitive by the RFC but not in practice; one account, one key.
    return normalized.lower()


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        parsed = ipaddress.ip_address(value.strip())
    except (ValueError, AttributeError):
        raise InvalidInputError("ip: not a valid IPv4 or IPv6 address") from None
    # A zone id names an interface of the host that saw the address, not a client: with it
    # one address has endless spellings (`fe80::1%eth0`, `%1`, ...) that limits count apart.
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.scope_id is not None:
        raise InvalidInputError("ip: an IPv6 zone id (the part from '%') is not allowed")
    return parsed


def single_line(value: str | None, field: str, limit: int) -> str | None:
    """A short, printable, one-line text; None and blank mean absent."""
    if value is None:
        return None
    if _CONTROL.search(value):
        raise InvalidInputError(f"{field}: must be one line without control characters")
    value = unicodedata.normalize("NFC", value).strip()
    if len(value) > limit:
        raise InvalidInputError(f"{field}: at most {limit} characters")
    return value or None


def identifier(value: str, field: str, limit: int = 200) -> str:
    checked = single_line(value, field, limit)
    if not checked:
        raise InvalidInputError(f"{field}: must not be empty")
    return checked


def flat_metadata(value: dict[str, Any] | None, *, max_keys: int = 32, max_bytes: int = 4096) -> dict[str, Any]:
    """A flat map of short string keys to scalars, bounded in keys and in size."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError("metadata: must be an object")
    if len(value) > max_keys:
        raise InvalidInputError(f"metadata: at most {max_keys} keys (got {len(value)})")
    size = 0
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > 64 or _CONTROL.search(key):
            raise InvalidInputError("metadata: keys must be 1 to 64 printable characters")
        if item is not None and not isinstance(item, str | int | float | bool):
            raise InvalidInputError(f"metadata.{key}: values must be strings, numbers, booleans or null")
        if isinstance(item, float) and item != item:  # NaN does not survive JSON round trips
            raise InvalidInputError(f"metadata.{key}: NaN is not allowed")
        if isinstance(item, float) and math.isinf(item):  # nor do infinities (they come back as null)
            raise InvalidInputError(f"metadata.{key}: infinity is not allowed")
        size += len(key.encode()) + len(str(item).encode())
    if size > max_bytes:
        raise InvalidInputError(f"metadata: at most {max_bytes} bytes in all (got {size})")
    return dict(value)
