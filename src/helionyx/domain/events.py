"""Typed, versioned domain events and their JSON line form."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

MESSAGE_INGESTED: Final = "MessageIngested"
TODO_CAPTURED: Final = "TodoCaptured"
TODO_COMPLETED: Final = "TodoCompleted"
NOTE_CAPTURED: Final = "NoteCaptured"

#: Current schema version of each event type. Readers accept every version up to this one.
SCHEMA_VERSIONS: Final[dict[str, int]] = {
    MESSAGE_INGESTED: 1,
    TODO_CAPTURED: 1,
    TODO_COMPLETED: 1,
    NOTE_CAPTURED: 1,
}

#: Event types read beyond the version written (a release that learns to read a new version
#: before one writes it, so rolling back to it stays possible). Unlisted: as SCHEMA_VERSIONS.
#: The release tooling records both in the artifact's data contract (release/artifacts/contract.py).
READABLE_SCHEMA_VERSIONS: Final[dict[str, int]] = {}

_REQUIRED = ("event_id", "event_type", "schema_version", "occurred_at", "payload")


class UnreadableVersion(ValueError):
    """A known event type at a schema version newer than this release reads."""

    def __init__(self, event_type: str, version: int) -> None:
        super().__init__(f"unsupported schema_version {version!r} for {event_type}")
        self.event_type, self.version = event_type, version

    @property
    def kind(self) -> str:
        """`NoteCaptured v2`."""
        return f"{self.event_type} v{self.version}"


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Event:
    """One immutable fact in the log."""

    event_type: str
    payload: dict[str, Any]
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: datetime = field(default_factory=utc_now)
    schema_version: int = 0

    def __post_init__(self) -> None:
        if self.event_type not in SCHEMA_VERSIONS:
            raise ValueError(f"unknown event type {self.event_type!r}")
        if self.schema_version == 0:
            object.__setattr__(self, "schema_version", SCHEMA_VERSIONS[self.event_type])
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(UTC))

    def to_dict(self) -> dict[str, Any]:
        """The event as plain JSON-ready data."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "occurred_at": self.occurred_at.isoformat().replace("+00:00", "Z"),
            "payload": self.payload,
        }

    def to_line(self) -> bytes:
        """One JSONL line, newline included, ready to append."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return (text + "\n").encode("utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """Parse an event, rejecting anything that is not a complete known event."""
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        event_type = data["event_type"]
        version = data["schema_version"]
        if event_type not in SCHEMA_VERSIONS:
            raise ValueError(f"unknown event type {event_type!r}")
        readable = READABLE_SCHEMA_VERSIONS.get(event_type, SCHEMA_VERSIONS[event_type])
        if isinstance(version, int) and not isinstance(version, bool) and version > readable:
            raise UnreadableVersion(event_type, version)
        if not isinstance(version, int) or not 1 <= version <= readable:
            raise ValueError(f"unsupported schema_version {version!r} for {event_type}")
        if not isinstance(data["payload"], dict):
            raise ValueError("payload is not an object")
        occurred_at = datetime.fromisoformat(str(data["occurred_at"]).replace("Z", "+00:00"))
        return cls(
            event_type=event_type,
            payload=data["payload"],
            event_id=str(data["event_id"]),
            occurred_at=occurred_at,
            schema_version=version,
        )

    @classmethod
    def from_line(cls, line: bytes) -> Event:
        """Parse one JSONL line."""
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("line is not a JSON object")
        return cls.from_dict(data)
