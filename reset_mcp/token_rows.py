"""Token rows the server can trust: the checks that refuse a row someone else wrote.

A database writer without the secret can revive a consumed token row and queue an
outbox row naming any address; the dispatcher would then re-mint a valid link from the
row's claims and mail it there. Every token row therefore carries `TokenSigner.row_mac`
over its identity (send id, user id, email, expiry, jti hash, kid), and:

- the dispatcher mints a link only for an outbox row whose token row's MAC holds and
  whose recipient and claims are that row's (`outbox_refusal`);
- verify and consume accept a token only when its row's MAC holds and the link's signed
  claims are the row's (`token_refusal`).

The MAC covers identity, not state: a writer can still roll `consumed_at` back, but the
link can then only go to, and only open, the account and address it was made for, and
only until its original expiry.

Rows written before schema version 5 have no MAC. `seal_unsealed` MACs the live ones
once, when the upgraded server first starts; from then on a row without a MAC is refused
everywhere: a writer who clears a MAC gains nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from reset_mcp.store import Tx
from reset_mcp.store.records import OutboxRow, TokenRecord
from reset_mcp.tokens import TokenClaims, TokenSigner

MAX_TTL = timedelta(minutes=60)  # the longest link lifetime config allows: no live row expires later
SEAL_BATCH = 500


def _whole_seconds(at: datetime) -> int:
    return int(at.timestamp())


def token_refusal(signer: TokenSigner, record: TokenRecord, claims: TokenClaims) -> str | None:
    """Why verify / consume must refuse this row for this link (a reason for the audit
    log), or None. The link's claims are signed, so they must be the row's."""
    if not signer.row_mac_ok(record):
        return "row_mac"
    if (
        claims.user_id != record.user_id
        or claims.email != record.email
        or claims.kid != record.kid
        or _whole_seconds(claims.expires_at) != _whole_seconds(record.expires_at)
    ):
        return "claims_mismatch"
    return None


def outbox_refusal(signer: TokenSigner, row: OutboxRow, token: TokenRecord | None) -> str | None:
    """Why the dispatcher must not mint a link for this reset outbox row, or None.

    `token` is the row of `row.send_id` (`Tx.get_token_for_send`). The link is minted
    from `row.payload["claims"]` and mailed to `row.recipient`: both must be the token
    row's, and that row must carry a valid MAC.
    """
    if token is None:
        return "no_token"
    if not signer.row_mac_ok(token) or token.send_id != row.send_id:
        return "row_mac"
    claims = row.payload.get("claims")
    if not isinstance(claims, dict) or row.recipient != token.email:
        return "claims_mismatch"
    try:
        same = (
            claims["user_id"] == token.user_id
            and claims["email"] == token.email
            and claims["kid"] == token.kid
            and int(claims["exp"]) == _whole_seconds(token.expires_at)
        )
    except (KeyError, TypeError, ValueError):
        return "claims_mismatch"
    return None if same else "claims_mismatch"


async def seal_unsealed(tx: Tx, signer: TokenSigner, now: datetime, *, batch: int = SEAL_BATCH) -> int:
    """MAC every live row that has none (written before schema version 5); answers how many.

    Run once when the upgraded server first starts: the links mailed in the hour before
    keep working. Only rows that are live, expire within MAX_TTL and name a key of the
    ring are sealed: a row planted with a far expiry stays refused, and a row whose key
    left the ring has a dead link anyway. Live rows are at most an hour of resets.
    """
    sealed = 0
    while True:
        rows = await tx.unsealed_tokens(now, now + MAX_TTL, signer.kids, batch)
        for record in rows:
            sealed += await tx.seal_token(record.jti_hash, signer.row_mac(record))
        if len(rows) < batch:
            return sealed
