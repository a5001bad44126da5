"""Versioned schema migrations, one list for both databases.

Each migration is (version, name, statements). `{serial}` becomes the dialect's
auto-increment key; a statement given as ("sqlite", sql) or ("postgres", sql) runs on
that database only (SQLite cannot drop a constraint or change a key without rebuilding
the table). A store applies, in one transaction each, the versions missing from
`schema_migrations`, so running them again is a no-op; the PostgreSQL store holds an
advisory lock while it does, so two instances starting at once cannot both apply one.
"""

from __future__ import annotations

Statement = str | tuple[str, str]  # both databases, or (dialect, sql)

# Spelled out rather than taken from the code's column lists: a migration must keep
# doing what it did when it was written.
_EVENTS_INDEXES = [
    "CREATE INDEX events_email ON events (email, event_type, created_at)",
    "CREATE INDEX events_user ON events (user_id, event_type, created_at) WHERE user_id IS NOT NULL",
    "CREATE INDEX events_ip ON events (ip, event_type, created_at) WHERE ip IS NOT NULL",
    "CREATE INDEX events_created ON events (created_at)",
]
_OUTBOX_COLS = (
    "id, send_id, kind, recipient, message_id, status, created_at, next_attempt_at, payload, attempts, "
    "not_after, last_error, provider_message_id, sent_at, lease_owner, lease_until"
)


def _rebuild(table: str, create: str, columns: str, indexes: list[str]) -> list[Statement]:
    """SQLite: `table` recreated from `create` (written for `{table}_v3`), rows and all."""
    return [
        ("sqlite", create),
        ("sqlite", f"INSERT INTO {table}_v3 ({columns}) SELECT {columns} FROM {table}"),
        ("sqlite", f"DROP TABLE {table}"),
        ("sqlite", f"ALTER TABLE {table}_v3 RENAME TO {table}"),
        *(("sqlite", index) for index in indexes),
    ]


MIGRATIONS: list[tuple[int, str, list[Statement]]] = [
    (
        1,
        "initial schema",
        [
            """CREATE TABLE sends (
                id TEXT PRIMARY KEY, kind TEXT NOT NULL, recipient TEXT NOT NULL, user_id TEXT,
                status TEXT NOT NULL, reason TEXT, requested_by TEXT NOT NULL, decision TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION, payload TEXT NOT NULL)""",
            "CREATE INDEX sends_status_created ON sends (status, created_at)",
            """CREATE TABLE tokens (
                jti_hash TEXT PRIMARY KEY, send_id TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL,
                email TEXT NOT NULL, kid TEXT NOT NULL, issued_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL, consumed_at DOUBLE PRECISION,
                revoked_at DOUBLE PRECISION, revoke_reason TEXT)""",
            "CREATE INDEX tokens_user ON tokens (user_id, expires_at)",
            "CREATE INDEX tokens_email ON tokens (email, expires_at)",
            "CREATE INDEX tokens_expires ON tokens (expires_at)",
            """CREATE TABLE outbox (
                id TEXT PRIMARY KEY, send_id TEXT NOT NULL, kind TEXT NOT NULL, recipient TEXT NOT NULL,
                message_id TEXT NOT NULL UNIQUE, status TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
                next_attempt_at DOUBLE PRECISION NOT NULL, payload TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0, not_after DOUBLE PRECISION, last_error TEXT,
                provider_message_id TEXT, sent_at DOUBLE PRECISION, lease_owner TEXT,
                lease_until DOUBLE PRECISION)""",
            "CREATE INDEX outbox_due ON outbox (status, next_attempt_at)",
            "CREATE INDEX outbox_send ON outbox (send_id)",
            "CREATE INDEX outbox_created ON outbox (created_at)",
            """CREATE TABLE approvals (
                id TEXT PRIMARY KEY, send_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, recipient TEXT NOT NULL,
                summary TEXT NOT NULL, requested_by TEXT NOT NULL, reason TEXT NOT NULL, status TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL, decided_by TEXT,
                decided_at DOUBLE PRECISION, decision_reason TEXT)""",
            "CREATE INDEX approvals_status ON approvals (status, expires_at)",
            """CREATE TABLE events (
                id {serial}, email TEXT NOT NULL, user_id TEXT, event_type TEXT NOT NULL, ip TEXT,
                device TEXT, country TEXT, metadata TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)""",
            "CREATE INDEX events_email ON events (email, event_type, created_at)",
            "CREATE INDEX events_user ON events (user_id, event_type, created_at)",
            "CREATE INDEX events_ip ON events (ip, event_type, created_at)",
            "CREATE INDEX events_created ON events (created_at)",
            """CREATE TABLE audit (
                seq BIGINT PRIMARY KEY, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
                subject TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""",
            """CREATE TABLE api_keys (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, scopes TEXT NOT NULL, secret_hash TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION)""",
        ],
    ),
    (
        2,
        "events: the user and IP indexes only for events that have one",
        [
            # Delivery and queue events carry no IP, delivery events no user: a third of
            # the inserts into each index were NULL keys nothing looks up (every query
            # names a value, which implies IS NOT NULL, so the planners still use them).
            # Measured on SQLite: an events insert 49 -> 34 us (three a reset).
            "DROP INDEX events_user",
            "CREATE INDEX events_user ON events (user_id, event_type, created_at) WHERE user_id IS NOT NULL",
            "DROP INDEX events_ip",
            "CREATE INDEX events_ip ON events (ip, event_type, created_at) WHERE ip IS NOT NULL",
        ],
    ),
    (
        3,
        "fewer index writes a reset: events without AUTOINCREMENT (SQLite), audit keyed by its rowid (SQLite), "
        "outbox.message_id without a UNIQUE index",
        [
            # Measured on SQLite, 200 resets: 4.06 -> 3.97 M instructions a reset, WAL
            # pages at concurrency 8 19.6 -> 18.1 a reset. AUTOINCREMENT updates
            # sqlite_sequence on every insert (three a reset); ids are still never reused
            # while newer rows exist, and nothing pages by event id. `audit.seq BIGINT
            # PRIMARY KEY` is a second B-tree on SQLite, INTEGER PRIMARY KEY is the
            # rowid. A Message-ID is "<outbox id@domain>", unique because the id is, and
            # no query looks one up.
            *_rebuild(
                "events",
                """CREATE TABLE events_v3 (
                id INTEGER PRIMARY KEY, email TEXT NOT NULL, user_id TEXT, event_type TEXT NOT NULL, ip TEXT,
                device TEXT, country TEXT, metadata TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)""",
                "id, email, user_id, event_type, ip, device, country, metadata, created_at",
                _EVENTS_INDEXES,
            ),
            *_rebuild(
                "audit",
                """CREATE TABLE audit_v3 (
                seq INTEGER PRIMARY KEY, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
                subject TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""",
                "seq, at, actor, action, subject, detail, prev_hash, hash",
                [],
            ),
            *_rebuild(
                "outbox",
                """CREATE TABLE outbox_v3 (
                id TEXT PRIMARY KEY, send_id TEXT NOT NULL, kind TEXT NOT NULL, recipient TEXT NOT NULL,
                message_id TEXT NOT NULL, status TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
                next_attempt_at DOUBLE PRECISION NOT NULL, payload TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0, not_after DOUBLE PRECISION, last_error TEXT,
                provider_message_id TEXT, sent_at DOUBLE PRECISION, lease_owner TEXT,
                lease_until DOUBLE PRECISION)""",
                _OUTBOX_COLS,
                [
                    "CREATE INDEX outbox_due ON outbox (status, next_attempt_at)",
                    "CREATE INDEX outbox_send ON outbox (send_id)",
                    "CREATE INDEX outbox_created ON outbox (created_at)",
                ],
            ),
            ("postgres", "ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_message_id_key"),
        ],
    ),
    (
        4,
        "admin sessions held server-side, so signing out ends them on every instance",
        [
            # id: a hash of the session cookie (the cookie itself is never stored).
            """CREATE TABLE admin_sessions (
                id TEXT PRIMARY KEY, key_id TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL)""",
            "CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at)",
        ],
    ),
    (
        5,
        "tokens.mac: a MAC of each token row's identity under a key derived from the secret",
        [
            # NULL on the rows written before: `token_rows.seal_unsealed` MACs the live
            # ones at the first start with the secret; every check refuses a NULL MAC.
            "ALTER TABLE tokens ADD COLUMN mac TEXT",
        ],
    ),
    (
        6,
        "events.mailbox and events.net: limits and risk count per canonical mailbox and host network",
        [
            # The two indexes replace `events_email` and `events_ip` (every count and list
            # now names a mailbox or a network), so a reset writes as many index entries as
            # before. Old rows are keyed by their address and IP as written: exact for an
            # IPv4 address and an untagged address outside the dotless domains; the rest
            # count apart from new rows for the hour the limits look back.
            "ALTER TABLE events ADD COLUMN mailbox TEXT",
            "ALTER TABLE events ADD COLUMN net TEXT",
            "UPDATE events SET mailbox = email, net = ip",
            "DROP INDEX events_email",
            "DROP INDEX events_ip",
            "CREATE INDEX events_mailbox ON events (mailbox, event_type, created_at)",
            "CREATE INDEX events_net ON events (net, event_type, created_at) WHERE net IS NOT NULL",
        ],
    ),
    (
        7,
        "approvals by requester: a caller's own pending sends, and a bound on them",
        [
            # Written once a held email (not on a reset that is sent at once).
            "CREATE INDEX approvals_requester ON approvals (requested_by, status, created_at)",
        ],
    ),
    (
        8,
        "contact_facts: each mailbox's security facts, kept apart from the events agents can record",
        [
            # One B-tree on SQLite (WITHOUT ROWID: the key is the row), so one page write
            # a reset. No index on updated_at: only the purge reads by it (a scan every
            # six hours), and every reset would move its entry.
            (
                "sqlite",
                "CREATE TABLE contact_facts (mailbox TEXT PRIMARY KEY, facts TEXT NOT NULL, "
                "updated_at DOUBLE PRECISION NOT NULL) WITHOUT ROWID",
            ),
            (
                "postgres",
                "CREATE TABLE contact_facts (mailbox TEXT PRIMARY KEY, facts TEXT NOT NULL, "
                "updated_at DOUBLE PRECISION NOT NULL)",
            ),
        ],
    ),
    (
        9,
        "idempotency keys (a caller's key, its arguments' hash and the first answer); approvals.facts",
        [
            # The key is the caller's and the caller's only: one agent cannot replay or
            # block another's. The first call inserts the row and fills `answer` in the
            # same transaction as its work, so a racing duplicate waits on the row and
            # then reads the answer (PostgreSQL), or runs after the commit (SQLite).
            """CREATE TABLE idempotency (
                caller_id TEXT NOT NULL, idem_key TEXT NOT NULL, tool TEXT NOT NULL, args_hash TEXT NOT NULL,
                answer TEXT, created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (caller_id, idem_key))""",
            "CREATE INDEX idempotency_created ON idempotency (created_at)",
            # An approval's summary is our words only; what the requester gave is kept
            # apart (JSON), to be shown quoted as data.
            "ALTER TABLE approvals ADD COLUMN facts TEXT",
        ],
    ),
]

MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
)


def statements(version_statements: list[Statement], serial: str, dialect: str) -> list[str]:
    """The SQL of one migration for `dialect` ("sqlite" or "postgres")."""
    out = []
    for stmt in version_statements:
        if isinstance(stmt, tuple):
            only, stmt = stmt
            if only != dialect:
                continue
        out.append(stmt.replace("{serial}", serial))
    return out
