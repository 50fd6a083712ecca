"""Data contracts: what a release can read, and what an event log holds.

Used on both sides: the operator plans and refuses with it, the host scans its own log with it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .protocol import DataContract, EventVersion

#: What an artifact built before data contracts is taken to be: projections schema 1, and a
#: reader of version 1 of every event type.
LEGACY: DataContract = {"projections": 1, "events": {}}
LEGACY_EVENT_VERSION = 1


def of_manifest(manifest: dict[str, Any]) -> DataContract:
    """The contract a manifest records, or LEGACY when it records none."""
    contract = manifest.get("data_contract")
    return cast(DataContract, contract) if isinstance(contract, dict) else LEGACY


def reads(contract: DataContract, event_type: str) -> int:
    """The highest schema version of `event_type` a release with `contract` reads."""
    entry = contract["events"].get(event_type)
    return entry["reads"] if entry else LEGACY_EVENT_VERSION


@dataclass(frozen=True)
class Unreadable:
    """Events a release cannot read: their type, version, and when the first was written."""

    event_type: str
    version: int
    readable: int
    first_at: str


_TYPE = re.compile(rb'"event_type": ?"([^"]+)"')
_VERSION = re.compile(rb'"schema_version": ?(\d+)')


def log_versions(events_dir: Path) -> dict[str, EventVersion]:
    """{event type: its highest schema version in the log, and when the first of those was}.

    Every rollback reads the whole log: the two fields are matched in the raw line, and a line
    is parsed only when it raises a type's highest version (100 000 events: 0.11 s, where
    parsing every line took 0.24 s).
    """
    found: dict[str, EventVersion] = {}
    for path in sorted(events_dir.glob("events-*.jsonl")) if events_dir.is_dir() else []:
        with path.open("rb") as handle:
            for line in handle:
                kind_match, version_match = _TYPE.search(line), _VERSION.search(line)
                if kind_match is None or version_match is None:
                    continue  # a torn line: the store quarantines it, nobody reads it
                kind, version = kind_match[1].decode(), int(version_match[1])
                if kind in found and version <= found[kind]["version"]:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                found[kind] = {"version": version, "first_at": str(event.get("occurred_at"))}
    return found


def unreadable(contract: DataContract, versions: dict[str, EventVersion]) -> list[Unreadable]:
    """Which event types in a log (see `log_versions`) a release with `contract` cannot read."""
    return [
        Unreadable(kind, seen["version"], reads(contract, kind), seen["first_at"])
        for kind, seen in sorted(versions.items())
        if seen["version"] > reads(contract, kind)
    ]


def explain(release: str, problem: Unreadable) -> str:
    """One line: why `release` cannot serve this log."""
    return (
        f"{release} cannot read the event log: it holds {problem.event_type} events of schema "
        f"version {problem.version} (the first at {problem.first_at}), and it reads up to "
        f"version {problem.readable}"
    )
