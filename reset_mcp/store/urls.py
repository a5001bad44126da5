"""A URL as it may be shown (doctor, the start-up log line, error messages): no password.

A database URL can carry its password in the userinfo (`postgresql://app:pw@db/x`) or as
a query parameter (`?password=pw`, which libpq and asyncpg both accept, the name
percent-encoded or not). `url_for_display` masks both, and the credentials of any other
URL (a webhook's userinfo, a `token=` or `key=` parameter). A URL that is not well formed
is masked more, never less: everything before its last `@` but the user name goes.
`hide_url_secrets` takes those same values out of any other text, such as a driver's
error message that quoted the URL.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

MASK = "***"
# Query parameters whose value is a credential: libpq's and asyncpg's, and the usual
# names of API keys and signatures in other URLs.
SECRET_PARAMS = frozenset(
    {"password", "sslpassword", "token", "access_token", "key", "api_key", "apikey", "secret", "sig", "signature"}
)
_USER = re.compile(r"[^:/?#@]*")


def _split(url: str) -> tuple[str, str, str, str] | None:
    """(scheme://, userinfo or "", host and path, query or "") or None if there is no scheme."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    at = rest.rfind("@")  # the last one: an unencoded '@' in a password must not end the userinfo
    creds, tail = (rest[:at], rest[at + 1 :]) if at >= 0 else ("", rest)
    where, _, query = tail.partition("?")
    return scheme + sep, creds, where, query


def _params(query: str) -> list[tuple[str, str]]:
    return [(name, value) for name, _, value in (part.partition("=") for part in re.split(r"[&;]", query))]


def _secret_name(name: str) -> bool:
    return unquote_plus(name).strip().lower() in SECRET_PARAMS


def url_for_display(url: str) -> str:
    """`url` with its password and credential parameters replaced by `***`."""
    parts = _split(url)
    if parts is None:
        return url
    scheme, creds, where, query = parts
    out = scheme
    if creds:
        user = _USER.match(creds).group(0)  # type: ignore[union-attr]
        out += f"{user}:{MASK}@" if creds != user else f"{user}@"
    out += where
    if query:
        out += "?" + re.sub(r"[^&;]+", lambda m: _mask_param(m.group(0)), query)
    return out


def _mask_param(part: str) -> str:
    name = part.partition("=")[0]
    return f"{name}={MASK}" if _secret_name(name) else part


def url_secrets(url: str) -> set[str]:
    """The credential values `url` holds, as written and decoded (for `hide_url_secrets`)."""
    parts = _split(url)
    if parts is None:
        return set()
    _, creds, _, query = parts
    found = set()
    user = _USER.match(creds).group(0) if creds else ""  # type: ignore[union-attr]
    if creds != user:
        found.add(creds[len(user) :].removeprefix(":"))
    found.update(value for name, value in _params(query) if _secret_name(name))
    found |= {unquote_plus(value) for value in found}
    return {value for value in found if value}


def hide_url_secrets(text: str, url: str) -> str:
    """`text` with every credential of `url` replaced by `***` (longest first)."""
    for secret in sorted(url_secrets(url), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
