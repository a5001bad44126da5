"""Token attacks, one test each (security checklist: Tokens)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reset_mcp.tokens import MAX_TOKEN_CHARS, TokenClaims, TokenSigner

SECRET = "k" * 40
OTHER = "o" * 40
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _claims(signer: TokenSigner, request_id: str = "req_1", ttl: int = 15) -> TokenClaims:
    return TokenClaims(
        jti=signer.jti_for(request_id),
        user_id="u-1",
        email="alice@example.com",
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=ttl),
        kid=signer.kid,
    )


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_round_trip_and_deterministic_re_mint() -> None:
    signer = TokenSigner(SECRET)
    claims = _claims(signer)
    token = signer.mint(claims)
    assert signer.mint(claims) == token  # the dispatcher can rebuild it from stored claims
    result = signer.decode(token, NOW + timedelta(minutes=1))
    assert result.failure is None and result.claims == claims
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256" and header["kid"] == signer.kid
    payload = jwt.decode(token, options={"verify_signature": False})
    assert {"sub", "email", "jti", "iat", "exp", "purpose"} <= set(payload)


def test_jti_has_256_bits_and_needs_the_secret() -> None:
    a, b = TokenSigner(SECRET), TokenSigner(OTHER)
    assert a.jti_for("req_1") == a.jti_for("req_1") != b.jti_for("req_1")
    assert len(base64.urlsafe_b64decode(a.jti_for("req_1") + "=")) == 32
    assert a.jti_for("req_1") != a.jti_for("req_2")


def test_tampered_payload_is_refused() -> None:
    signer = TokenSigner(SECRET)
    head, payload, sig = signer.mint(_claims(signer)).split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=="))
    data["sub"] = "admin"
    assert signer.decode(f"{head}.{_b64(data)}.{sig}", NOW).failure == "bad_signature"


def test_wrong_key_is_refused() -> None:
    forger = TokenSigner(OTHER)
    token = forger.mint(_claims(forger))
    assert TokenSigner(SECRET).decode(token, NOW).failure == "bad_signature"


def test_alg_none_is_refused() -> None:
    signer = TokenSigner(SECRET)
    good = signer.mint(_claims(signer))
    payload = good.split(".")[1]
    for alg in ("none", "None", "NONE"):
        forged = f"{_b64({'alg': alg, 'typ': 'JWT', 'kid': signer.kid})}.{payload}."
        assert signer.decode(forged, NOW).claims is None


def test_other_algorithms_and_crit_headers_are_refused() -> None:
    signer = TokenSigner(SECRET)
    claims = _claims(signer)
    good = signer.mint(claims)
    payload = jwt.decode(good, options={"verify_signature": False})
    # HS512 with the right kid and even a key derived like ours: the algorithm is pinned.
    hs512 = jwt.encode(payload, "x" * 64, algorithm="HS512", headers={"kid": signer.kid})
    assert signer.decode(hs512, NOW).failure == "bad_signature"
    crit = jwt.encode(payload, "x" * 64, algorithm="HS256", headers={"kid": signer.kid, "crit": ["exp"]})
    assert signer.decode(crit, NOW).claims is None  # pyjwt or our own check refuses an unknown crit
    unknown_kid = jwt.encode(payload, "x" * 64, algorithm="HS256", headers={"kid": "nope"})
    assert signer.decode(unknown_kid, NOW).failure == "bad_signature"


def test_expired_token_is_refused_by_the_clock() -> None:
    signer = TokenSigner(SECRET)
    token = signer.mint(_claims(signer, ttl=15))
    assert signer.decode(token, NOW + timedelta(minutes=14, seconds=59)).failure is None
    assert signer.decode(token, NOW + timedelta(minutes=15)).failure == "expired"


def test_wrong_purpose_is_refused() -> None:
    signer = TokenSigner(SECRET)
    token = signer.mint(_claims(signer))
    payload = jwt.decode(token, options={"verify_signature": False})
    payload["purpose"] = "email_verification"
    from reset_mcp.tokens import _derive

    other = jwt.encode(payload, _derive(SECRET.encode(), "jwt"), algorithm="HS256", headers={"kid": signer.kid})
    assert signer.decode(other, NOW).failure == "wrong_purpose"


@pytest.mark.parametrize("missing", ["exp", "iat", "jti", "sub"])
def test_missing_claims_are_refused(missing: str) -> None:
    from reset_mcp.tokens import _derive

    signer = TokenSigner(SECRET)
    payload = jwt.decode(signer.mint(_claims(signer)), options={"verify_signature": False})
    del payload[missing]
    token = jwt.encode(payload, _derive(SECRET.encode(), "jwt"), algorithm="HS256", headers={"kid": signer.kid})
    assert signer.decode(token, NOW).failure == "malformed"


def test_key_rotation_signs_with_newest_and_verifies_with_ring() -> None:
    old = TokenSigner(OTHER)
    old_token = old.mint(_claims(old))
    rotated = TokenSigner(SECRET, fallbacks=[OTHER])
    assert rotated.kid != old.kid
    assert rotated.decode(old_token, NOW).failure is None
    assert TokenSigner(SECRET).decode(old_token, NOW).failure == "bad_signature"


@pytest.mark.parametrize("token", ["", "a", "a.b", "a.b.c", "x" * (MAX_TOKEN_CHARS + 1), "é.é.é"])
def test_garbage_never_raises(token: str) -> None:
    result = TokenSigner(SECRET).decode(token, NOW)
    assert result.claims is None and result.failure in ("malformed", "bad_signature")


def _hs(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


@settings(max_examples=200, deadline=None)
@given(
    user_id=st.text(min_size=1, max_size=80),
    email=st.text(min_size=1, max_size=120),
    request_id=st.text(min_size=1, max_size=60),
    ttl=st.integers(min_value=1, max_value=10**6),
    rotated=st.booleans(),
)
def test_mint_writes_the_bytes_pyjwt_writes(user_id: str, email: str, request_id: str, ttl: int, rotated: bool) -> None:
    # `mint` and `jti_for` sign without `jwt.encode` and `hmac.new` (for speed); the
    # token must be exactly PyJWT's, for any claims (non-ASCII and JSON escapes
    # included) and for the newest key of a rotated ring.
    secret = OTHER if rotated else SECRET
    signer = TokenSigner(secret, fallbacks=[SECRET] if rotated else [])
    kid = signer.kid
    jti = signer.jti_for(request_id, kid)
    expected_jti = _hs(_hs(secret.encode(), b"reset-mcp/jti/v1"), request_id.encode())
    assert jti == base64.urlsafe_b64encode(expected_jti).rstrip(b"=").decode()
    claims = TokenClaims(jti, user_id, email, NOW, NOW + timedelta(minutes=ttl), kid)
    payload = {
        "sub": user_id,
        "email": email,
        "jti": jti,
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(minutes=ttl)).timestamp()),
        "purpose": "password_reset",
    }
    signing_key = _hs(secret.encode(), b"reset-mcp/jwt/v1")
    token = signer.mint(claims)
    assert token == jwt.encode(payload, signing_key, algorithm="HS256", headers={"kid": kid})
    assert signer.decode(token, NOW).claims == claims


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.text(max_size=60))
def test_the_prepared_macs_are_hmac_sha256_of_each_key(message: bytes, request_id: str) -> None:
    # The signer keeps HMAC objects keyed once; each MAC must be hmac.digest's, and a MAC
    # must leave the keyed object as it was (two in a row are the same).
    from reset_mcp import tokens

    signer = TokenSigner("s" * 40, fallbacks=["f" * 40])
    for key in signer._ring.values():
        prepared = (key.signing_mac, key.jti_mac, key.row_mac)
        for keyed, raw in zip(prepared, (key.signing, key.jti, key.row), strict=True):
            expected = hmac.digest(raw, message, "sha256")
            assert tokens._mac(keyed, message) == expected
            assert tokens._mac(keyed, message) == expected
        jti = base64.urlsafe_b64encode(hmac.digest(key.jti, request_id.encode(), "sha256")).rstrip(b"=").decode()
        assert signer.jti_for(request_id, key.kid) == jti
