"""The domain's exception hierarchy; the API and the CLI each turn it into answers in one place.

DomainError
├── EventLogCorrupt           a complete line mid-log does not parse (needs a human)
├── StoreUnavailable          the log cannot be written now (disk full, not writable): 503
├── ProjectionsUnavailable    the read model cannot catch up with the log now: 503
├── ProjectionSchemaMismatch  the database was written by another schema version
├── ProjectionsAhead          the database reflects more than the log holds
├── ProjectionsMismatch       the log changed before the database's recorded position
├── ProjectionsCorrupt        the database file is not a usable SQLite database
├── ProjectionsInUse          a running service holds the database (rebuild refused)
├── IdempotencyConflict       a key reused with another request: 422
├── IdempotencyInFlight       a key whose first request is still being served: 409
└── UnknownTodo               a todo number that is not on the list: 404
"""

from __future__ import annotations

from pathlib import Path


class DomainError(Exception):
    """Base of every error the domain raises."""


class EventLogCorrupt(DomainError):
    """A complete line in the middle of the log does not parse; this needs a human."""

    def __init__(
        self, path: Path, line_number: int, reason: str, *, offset: int | None = None
    ) -> None:
        self.path = path
        self.line_number = line_number
        where = f"line {line_number}" if offset is None else f"at byte {offset}"
        super().__init__(f"event log {path} {where} is not a valid event: {reason}")


class StoreUnavailable(DomainError):
    """The event log cannot take an append now; nothing of the request was stored."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ProjectionsUnavailable(DomainError):
    """The read model is behind the log and cannot catch up now; every event is in the log."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ProjectionsInUse(DomainError):
    """Another process (the running service) holds the projections database."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"projections database {path} is in use by the running service; stop it first "
            "(systemctl stop helionyx-<env>.socket helionyx-<env>.service), then rebuild"
        )


class IdempotencyConflict(DomainError):
    """An Idempotency-Key already used for a different request."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was already used for a different request; "
            "use a new key for a new request"
        )


class IdempotencyInFlight(DomainError):
    """The first request with this Idempotency-Key has not finished yet."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"a request with Idempotency-Key {key!r} is still being processed; retry shortly"
        )


class ProjectionSchemaMismatch(DomainError):
    """The projections database was written by another schema version."""

    def __init__(self, path: Path, found: int | None, expected: int) -> None:
        self.path = path
        self.found = found
        self.expected = expected
        super().__init__(
            f"projections database {path} has schema version {found}, this release expects "
            f"{expected}; run `helionyx rebuild-projections --env <env>` to rebuild it from events"
        )


class ProjectionsAhead(DomainError):
    """The projections claim more events than the log holds (log replaced or truncated)."""

    def __init__(self, path: Path, applied: int, in_log: int) -> None:
        super().__init__(
            f"projections database {path} has applied {applied} events but the log holds "
            f"{in_log}; run `helionyx rebuild-projections --env <env>` to rebuild it from events"
        )


class ProjectionsMismatch(DomainError):
    """The log no longer holds, at the read model's recorded position, the event it applied
    last (a line inserted or removed before it): only a rebuild can tell what it reflects."""

    def __init__(self, path: Path, log_file: Path, offset: int) -> None:
        super().__init__(
            f"projections database {path} does not match the event log: {log_file.name} no "
            f"longer has the event it applied last just before byte {offset} (the log was "
            f"changed by hand); run `helionyx rebuild-projections --env <env>`"
        )


class ProjectionsCorrupt(DomainError):
    """The projections file cannot be opened as a SQLite database."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"projections database {path} is not usable ({reason}); run "
            f"`helionyx rebuild-projections --env <env>` to build it again from the log"
        )


class UnknownTodo(DomainError):
    """A todo number that is not on the list."""

    def __init__(self, number: int) -> None:
        self.number = number
        super().__init__(f"there is no todo #{number}")
