"""deploy-log.jsonl: the one writer and reader of the environment's audit log, and the rules
read from it (which releases failed, which were deployed last). The record is
`protocol.LogRecord`; the file is only ever appended to."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import cast

from .files import append_durably
from .protocol import FAILED, FINISH, GOING_LIVE, ROLLED_BACK, STEP_OK, SUCCEEDED, SWITCH, LogRecord

#: How many records a `state` answer carries (the newest).
MAX_ENTRIES = 2000


def append(path: Path, records: Iterable[LogRecord]) -> None:
    """Append records durably, one JSON line each."""
    data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
    if data:
        path.parent.mkdir(parents=True, exist_ok=True)
        append_durably(path, data)


def read_decisive(path: Path) -> list[LogRecord]:
    """The records every decision reads: finish records and switches (a torn line skipped).

    The per-step records would make each answer grow with history and decide nothing.
    """
    if not path.exists():
        return []
    records: list[LogRecord] = []
    with path.open("rb") as handle:
        for line in handle:
            # A cheap pre-filter; most lines are step records.
            if b'"finish"' not in line and b'"switch"' not in line:
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("step") in (FINISH, SWITCH):
                    records.append(cast(LogRecord, record))
    return records[-MAX_ENTRIES:]


def finishes(log: Iterable[LogRecord]) -> list[LogRecord]:
    """Every operation's closing record, in log order (append order, whatever the clocks said)."""
    return [r for r in log if r.get("step") == FINISH]


def went_live(record: LogRecord) -> bool:
    """A closing record of an operation that put its release live and healthy."""
    return (
        record.get("step") == FINISH
        and record.get("action") in GOING_LIVE
        and record.get("outcome") == SUCCEEDED
    )


def failed(record: LogRecord) -> bool:
    """A closing record of an operation whose release failed (or was rolled back)."""
    return record.get("step") == FINISH and record.get("outcome") in (FAILED, ROLLED_BACK)


def failed_shas(log: Iterable[LogRecord]) -> set[str]:
    """Releases whose latest deploy, rollback or restart failed (and were not healthy since)."""
    latest: dict[str, str] = {}
    for record in finishes(log):
        sha = record.get("sha")
        if sha and record.get("action") in ("deploy", "rollback", "restart"):
            latest[sha] = str(record.get("outcome"))
    return {sha for sha, outcome in latest.items() if outcome in (ROLLED_BACK, FAILED)}


def last_deployed_first(log: Iterable[LogRecord], shas: Iterable[str]) -> list[str]:
    """`shas` ordered by their last appearance in the log, newest first (unseen ones last)."""
    rank: dict[str, int] = {}
    for position, record in enumerate(log):
        sha = record.get("sha")
        if isinstance(sha, str):
            rank[sha] = position
    return sorted(shas, key=lambda s: rank.get(s, -1), reverse=True)


def last_switched_in(log: Iterable[LogRecord], sha: str | None) -> LogRecord | None:
    """The record of the operation that last put `sha` live: a deploy or rollback that
    succeeded, or a switch whose operation was cut off before it finished. A no-op switches
    nothing."""
    for record in reversed(list(log)):
        if record.get("sha") != sha:
            continue
        if went_live(record):
            return record
        if record.get("step") == SWITCH and record.get("outcome") == STEP_OK:
            return record
    return None
