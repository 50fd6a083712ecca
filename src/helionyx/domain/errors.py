"""The domain's exception hierarchy."""

from __future__ import annotations

from pathlib import Path


class DomainError(Exception):
    """Base of every error the domain raises."""


class EventLogCorrupt(DomainError):
    """A complete line in the middle of the log does not parse; this needs a human."""

    def __init__(self, path: Path, line_number: int, reason: str) -> None:
        self.path = path
        self.line_number = line_number
        super().__init__(f"event log {path} line {line_number} is not a valid event: {reason}")


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


class UnknownTodo(DomainError):
    """A todo number that is not on the list."""

    def __init__(self, number: int) -> None:
        self.number = number
        super().__init__(f"there is no todo #{number}")
