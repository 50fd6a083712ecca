"""SQLite read models derived from the event log.

The database is disposable: it can be rebuilt from events at any time. Its schema carries a
version; a database written by another version is refused rather than migrated in place, so an
operator always decides when a rebuild happens.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from helionyx.domain import events as ev
from helionyx.domain.errors import ProjectionsAhead, ProjectionSchemaMismatch
from helionyx.domain.events import Event
from helionyx.domain.store import EventStore

SQLITE_MAX_INTEGER = 2**63 - 1

SCHEMA_VERSION = 1
_TODO_COLUMNS = "SELECT number, event_id, text, created_at, completed_at FROM todos"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE message_counts (source TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE todos (
    number INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    message_id TEXT,
    created_at TEXT NOT NULL,
    completed_at TEXT
);
CREATE TABLE notes (
    number INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    message_id TEXT,
    created_at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Todo:
    """A todo as the read model sees it."""

    number: int
    event_id: str
    text: str
    created_at: str
    completed_at: str | None

    @property
    def done(self) -> bool:
        """Whether the todo has been completed."""
        return self.completed_at is not None


@dataclass(frozen=True)
class Note:
    """A captured note."""

    number: int
    event_id: str
    text: str
    created_at: str


class Projections:
    """The read models in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        # One connection is shared by the server's worker threads; SQLite calls and
        # transactions on it must not interleave.
        self.lock = threading.RLock()

    # -- lifecycle ---------------------------------------------------------------------
    def open(self) -> None:
        """Open the database, creating it when absent and refusing a foreign schema."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        if fresh:
            _create(db)
        else:
            found = _schema_version(db)
            if found != SCHEMA_VERSION:
                db.close()
                raise ProjectionSchemaMismatch(self.path, found, SCHEMA_VERSION)
        self._db = db

    def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        """The open connection."""
        if self._db is None:
            raise RuntimeError("projections are not open")
        return self._db

    # -- applying events ---------------------------------------------------------------
    @property
    def applied(self) -> int:
        """How many events from the start of the log have been applied."""
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'applied'").fetchone()
            return int(row[0]) if row else 0

    def catch_up(self, store: EventStore) -> int:
        """Apply every event the log holds beyond what was applied; returns how many."""
        applied = self.applied
        if applied > store.count:
            raise ProjectionsAhead(self.path, applied, store.count)
        return self.apply(store.read(start=applied))

    def apply(self, events: Iterable[Event]) -> int:
        """Apply events in one transaction, advancing the applied counter."""
        applied = 0
        with self._transaction() as db:
            for event in events:
                _apply_one(db, event)
                applied += 1
            db.execute("UPDATE meta SET value = value + ? WHERE key = 'applied'", (applied,))
        return applied

    # -- queries -----------------------------------------------------------------------
    def todos(self, *, include_done: bool = False) -> list[Todo]:
        """Todos in capture order; open ones only unless asked."""
        with self.lock:
            query = _TODO_COLUMNS
            if not include_done:
                query += " WHERE completed_at IS NULL"
            rows = self.db.execute(query + " ORDER BY number").fetchall()
            return [Todo(*row) for row in rows]

    def todo(self, number: int) -> Todo | None:
        """One todo by its number."""
        if not 0 < number <= SQLITE_MAX_INTEGER:
            return None  # no such todo; SQLite could not even be asked (found by the API fuzz)
        with self.lock:
            row = self.db.execute(_TODO_COLUMNS + " WHERE number = ?", (number,)).fetchone()
            return Todo(*row) if row else None

    def notes(self) -> list[Note]:
        """Notes in capture order."""
        with self.lock:
            rows = self.db.execute(
                "SELECT number, event_id, text, created_at FROM notes ORDER BY number"
            ).fetchall()
            return [Note(*row) for row in rows]

    def message_counts(self) -> dict[str, int]:
        """Ingested messages per source."""
        with self.lock:
            rows = self.db.execute("SELECT source, count FROM message_counts ORDER BY source")
            return {str(source): int(count) for source, count in rows}

    def snapshot(self) -> dict[str, object]:
        """Everything the read model holds, for comparing against a rebuild."""
        return {
            "applied": self.applied,
            "messages": self.message_counts(),
            "todos": [t.__dict__ for t in self.todos(include_done=True)],
            "notes": [n.__dict__ for n in self.notes()],
        }

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


def rebuild(path: Path, store: EventStore) -> int:
    """Build a fresh projections database from the whole log and swap it in atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".rebuild")
    for leftover in _db_files(staging):
        leftover.unlink()
    fresh = Projections(staging)
    fresh.open()
    try:
        count = fresh.apply(store.read())
        fresh.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        fresh.close()
    # The old WAL belongs to the old file; left beside the new one it would be replayed into it.
    for stale in _db_files(path):
        if stale != path:
            stale.unlink()
    staging.replace(path)
    return count


def _db_files(path: Path) -> list[Path]:
    """The database file and its WAL companions that exist, main file first."""
    candidates = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return [p for p in candidates if p.exists()]


def _create(db: sqlite3.Connection) -> None:
    db.executescript(_SCHEMA)
    db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
    db.execute("INSERT INTO meta (key, value) VALUES ('applied', 0)")


def _schema_version(db: sqlite3.Connection) -> int | None:
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError:
        return None
    return int(row[0]) if row else None


def _apply_one(db: sqlite3.Connection, event: Event) -> None:
    payload = event.payload
    when = event.occurred_at.isoformat()
    if event.event_type == ev.MESSAGE_INGESTED:
        db.execute(
            "INSERT INTO message_counts (source, count) VALUES (?, 1) "
            "ON CONFLICT(source) DO UPDATE SET count = count + 1",
            (str(payload.get("source", "api")),),
        )
    elif event.event_type == ev.TODO_CAPTURED:
        db.execute(
            "INSERT INTO todos (event_id, text, message_id, created_at) VALUES (?, ?, ?, ?)",
            (event.event_id, str(payload["text"]), payload.get("message_id"), when),
        )
    elif event.event_type == ev.TODO_COMPLETED:
        db.execute(
            "UPDATE todos SET completed_at = ? WHERE event_id = ? AND completed_at IS NULL",
            (when, str(payload["todo_event_id"])),
        )
    elif event.event_type == ev.NOTE_CAPTURED:
        db.execute(
            "INSERT INTO notes (event_id, text, message_id, created_at) VALUES (?, ?, ?, ?)",
            (event.event_id, str(payload["text"]), payload.get("message_id"), when),
        )
