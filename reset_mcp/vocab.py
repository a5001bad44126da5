"""The closed vocabularies: every status, event, scope, mode and action has one spelling, here.

They are `StrEnum`s, so a member is its string: it compares equal to it, is stored and
serialised as it, and reads back from the database as a plain `str` that still compares
equal. Email kinds are not here: each kind names itself in its module under `emails/`,
so adding a kind touches no list.
"""

from __future__ import annotations

from enum import StrEnum


class SendStatus(StrEnum):
    """What became of a request to send an email, as tools report it."""

    QUEUED = "queued"  # accepted, in the outbox, not yet handed over
    SENT = "sent"
    PENDING_APPROVAL = "pending_approval"
    BLOCKED = "blocked"
    RATE_LIMITED = "rate_limited"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"
    CANCELLED = "cancelled"  # a queued reset whose token was revoked or used before delivery

    @property
    def final(self) -> bool:
        """Nothing more happens to a request in this status (purge may delete it once old)."""
        return self not in (SendStatus.QUEUED, SendStatus.PENDING_APPROVAL)


class OutboxStatus(StrEnum):
    """An outbox row's state; also the outcome of one delivery attempt."""

    PENDING = "pending"  # waiting for its (next) attempt
    SENDING = "sending"  # leased to a worker
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"  # a reset email whose link expired before it could leave
    CANCELLED = "cancelled"  # a reset email whose link was revoked or used meanwhile

    @property
    def final(self) -> bool:
        return self not in (OutboxStatus.PENDING, OutboxStatus.SENDING)

    @property
    def send_status(self) -> SendStatus:
        """The status the request reports while (or after) its row is in this state."""
        return _SEND_STATUS_OF[self]


# A lookup, not `SendStatus(value)`: an enum's constructor runs Python code on every call.
_SEND_STATUS_OF = {
    status: SendStatus.QUEUED if not status.final else SendStatus(status.value) for status in OutboxStatus
}


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Event(StrEnum):
    """Contact-history event types reset-mcp writes itself; an agent may not record them."""

    RESET_REQUESTED = "reset_requested"  # an accepted request: counts toward the rate limits
    RESET_RATE_LIMITED = "reset_rate_limited"  # a refused request: still an attempt for the abuse verdict
    RESET_REPORTED = "reset_reported_unrequested"  # the owner said "this wasn't me"
    RESET_CONSUMED = "reset_consumed"
    EMAIL_QUEUED = "email_queued"  # counted by the policy's per-address hourly cap
    EMAIL_DELIVERED = "email_delivered"
    ALERT_QUEUED = "security_alert_queued"  # dedupes security alerts per account, reason and window
    ALERT_REQUESTED = "security_alert_requested"  # an agent asked: its own hourly cap
    PASSWORD_CHANGED_NOTICE = "password_changed_notice"  # noqa: S105 - an event name, not a password
    NOTICE_DEFERRED = "oversight_notice_deferred"  # past the hourly notice cap: goes into the next digest
    DIGEST_QUEUED = "oversight_digest_queued"  # a digest went out: the deferred notices up to this one
    # Keyed by what the agent gave, not by a mailbox (`email` holds "account:<key>" or
    # "caller:<id>"), so a limit reads the same for a known and an unknown account.
    ACCOUNT_REQUESTED = "reset_account_requested"  # a directory reset asked for this account (any outcome)
    ACCOUNT_ALERT_REQUESTED = "account_alert_requested"  # an agent's alert for this account (directory)
    CALLER_SEND = "caller_send"  # one send asked by this caller: the per-caller hourly budget


# The events that count as a reset attempt for the abuse verdict.
ATTEMPTS: tuple[Event, ...] = (Event.RESET_REQUESTED, Event.RESET_RATE_LIMITED)
# With a directory, what an agent may see counts under the account as named.
ACCOUNT_ATTEMPTS: tuple[Event, ...] = (Event.ACCOUNT_REQUESTED,)


class Scope(StrEnum):
    """What an API key may do."""

    SEND = "send"  # the agent's tools
    REDEEM = "redeem"  # the app's reset page: verify and consume a token, report "this wasn't me"
    APPROVE = "approve"  # the overseer: decide held emails (never over MCP)
    CONTACTS_READ = "contacts:read"  # any address's contact history and abuse detail (support staff)


class Mode(StrEnum):
    """The oversight modes, from least to most trust in the agent."""

    READ_ONLY = "read_only"
    GATED = "gated"
    CONFIRM = "confirm"  # a person with an `approve` key decides on our page (URL elicitation)
    CONFIRM_IN_CLIENT = "confirm_in_client"  # the agent's client asks its user (form elicitation)
    MONITORED = "monitored"
    AUTONOMOUS = "autonomous"


class Action(StrEnum):
    """The policy's decision for one email."""

    SEND = "send"
    SEND_AND_NOTIFY = "send_and_notify"
    HOLD = "hold"
    CONFIRM = "confirm"  # held; the client is pointed at the approvals page
    CONFIRM_IN_CLIENT = "confirm_in_client"  # asked in the agent's client; held if it cannot ask
    BLOCK = "block"


class Risk(StrEnum):
    LOW = "low"
    ELEVATED = "elevated"
    HIGH = "high"


class AlertReason(StrEnum):
    """Why a security alert is sent; each has its words in every locale (`alert_reason_<code>`)."""

    SUSPICIOUS_RESET_ACTIVITY = "suspicious_reset_activity"
    NEW_DEVICE_SIGN_IN = "new_device_sign_in"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a reason code, not a password
    ACCOUNT_LOCKED = "account_locked"
    OTHER = "other"


class AccountStatus(StrEnum):
    """What an agent hears with a directory: nothing that differs between a known and an unknown account."""

    ACCEPTED = "accepted"
    RATE_LIMITED = "rate_limited"
