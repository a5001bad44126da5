"""Rules several settings share: a URL that is https (or http to this machine), a long secret."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import SecretStr

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
MIN_SECRET_BYTES = 32


def https_or_loopback(value: str | None, *, query: bool = True) -> str | None:
    """`value` unchanged if it is an https URL, or http to localhost; `query=False` also
    refuses a query or fragment (an issuer or audience is an identifier, not a page)."""
    if value is None:
        return None
    parts = urlsplit(value)
    if not query and (parts.query or parts.fragment):
        raise ValueError("must be a URL without a query or fragment")
    if parts.scheme == "https" and parts.hostname:
        return value
    if parts.scheme == "http" and (parts.hostname or "") in LOCAL_HOSTS:
        return value
    raise ValueError("must be an https:// URL (http:// is allowed only for localhost / 127.0.0.1)")


def long_enough(value: SecretStr | None) -> SecretStr | None:
    if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes (try: openssl rand -base64 48)")
    return value
