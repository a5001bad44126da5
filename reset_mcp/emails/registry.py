"""The email kinds an App knows: the built-in five, plus any an embedding application adds.

`app.py` builds one `EmailKinds` and hands it to whatever needs a kind's facts (the
composer, the gate, the outbox, the approvals page), so no other module lists kinds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from reset_mcp.emails import oversight_digest, oversight_notice, password_changed, password_reset, security_alert
from reset_mcp.emails.kind import EmailKind
from reset_mcp.errors import ConfigError, InvalidInputError

AnyKind = EmailKind[Any, Any]
BUILTIN: tuple[AnyKind, ...] = (
    password_reset.KIND,
    security_alert.KIND,
    password_changed.KIND,
    oversight_notice.KIND,
    oversight_digest.KIND,
)
BUILTIN_NAMES: tuple[str, ...] = tuple(kind.name for kind in BUILTIN)


class EmailKinds:
    """Kinds by name, in registration order."""

    def __init__(self, kinds: Iterable[AnyKind] = BUILTIN) -> None:
        self._kinds: dict[str, AnyKind] = {}
        for kind in kinds:
            if kind.name in self._kinds:
                raise ConfigError(f"email kind {kind.name!r} is registered twice")
            self._kinds[kind.name] = kind

    def __getitem__(self, name: str) -> AnyKind:
        kind = self._kinds.get(name)
        if kind is None:
            raise InvalidInputError(f"unknown email kind {name!r}; choose one of: {', '.join(self._kinds)}")
        return kind

    def get(self, name: str) -> AnyKind | None:
        return self._kinds.get(name)

    def __iter__(self) -> Iterator[AnyKind]:
        return iter(self._kinds.values())

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    @property
    def gated(self) -> tuple[str, ...]:
        """The kinds the oversight policy decides on (all but the overseer's own notices)."""
        return tuple(name for name, kind in self._kinds.items() if not kind.to_overseer)
