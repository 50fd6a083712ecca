"""SQLite read models derived from the event log.

The database is disposable: it can be rebuilt from events at any time. It records exactly which
events it reflects as a position in the log (a count, a file and a byte offset, in the same
transaction as the rows), so catching up always continues from the log itself and a failed
update is repaired by the next one. Its schema carries a version; a database written by another
version is refused rather than migrated in place, so an operator always decides when a rebuild
happens.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from helionyx.domain import events as ev
from helionyx.domain.errors import (
    ProjectionsAhead,
    ProjectionSchemaMismatch,
    ProjectionsCorrupt,
    ProjectionsInUse,
    ProjectionsMismatch,
    ProjectionsUnavailable,
)
from helionyx.domain.events import Event
from helionyx.domain.store import START, EventStore, LogPosition

SQLITE_MAX_INTEGER = 2**63 - 1

SCHEMA_VERSION = 1
WAL_PAGES = 64
WAL_LIMIT = 256 * 1024
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
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # The write-ahead log is checkpointed every WAL_PAGES pages and cut back to
            # WAL_LIMIT after each checkpoint: on a small disk it must not keep the space
            # the event log needs (it held 737 KB of a 1 MB disk, docs/CONFIG.md).
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
            db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            if fresh:
                _create(db)
            found = SCHEMA_VERSION if fresh else _schema_version(db)
        except sqlite3.DatabaseError as exc:
            db.close()
            raise ProjectionsCorrupt(self.path, str(exc)) from None
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
        """How many events from the start of the log the read model reflects."""
        with self.lock:
            return int(self._meta("applied") or 0)

    def catch_up(self, store: EventStore) -> int:
        """Apply every event the log holds after the recorded position; returns how many.

        Raises ProjectionsUnavailable (the database cannot be written now) or ProjectionsAhead.
        """
        with self.lock:
            try:
                position = self._position(store)
                applied, last = 0, position
                with self._transaction() as db:
                    for event, after in store.read_after(position):
                        if event is not None:
                            _apply_one(db, event)
                        applied, last = applied + 1, after
                    if applied:
                        rows = [
                            ("applied", str(last.count)),
                            ("log_file", last.last_file or ""),
                            ("log_offset", str(last.offset)),
                        ]
                        # The line just before the position, checked the next time: a log
                        # changed by hand before it would otherwise be read from mid-line.
                        rows.append(("last_event_id", _id_before(store, last) or ""))
                        db.executemany(
                            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", rows
                        )
            except sqlite3.Error as exc:
                raise ProjectionsUnavailable(_reason(exc, self.path)) from exc
            except OSError as exc:
                raise ProjectionsUnavailable(f"the event log cannot be read: {exc}") from exc
            return applied

    def _position(self, store: EventStore) -> LogPosition:
        applied = int(self._meta("applied") or 0)
        log_file = self._meta("log_file")
        if log_file is None:
            # Written by a release that kept only the count: find where that count ends.
            position = START
            if applied:
                for _, position in store.read_after(START):
                    if position.count == applied:
                        break
            if position.count != applied:
                raise ProjectionsAhead(self.path, applied, store.count)
            return position
        offset = int(self._meta("log_offset") or 0)
        where = store.directory / log_file if log_file else None
        # The file decides, not the store's count: another thread's append may be on disk
        # (and applied from there) a moment before that count includes it.
        if where is not None and (not where.is_file() or where.stat().st_size < offset):
            raise ProjectionsAhead(self.path, applied, store.count)
        position = LogPosition(applied, log_file or None, offset)
        expected = self._meta("last_event_id")
        if where is not None and expected and _id_before(store, position) != expected:
            raise ProjectionsMismatch(self.path, where, offset)
        return position

    def compact(self) -> None:
        """Checkpoint the write-ahead log and truncate it, giving its space back to the disk."""
        with self.lock, contextlib.suppress(sqlite3.Error):
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

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
                db.execute("COMMIT")
            except BaseException:
                # SQLite rolls back by itself on some errors (a full disk); then there is
                # nothing left to roll back, and trying would hide the real error.
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise


#: Left beside the read models by a rollback the operator forced onto a release that cannot
#: read the whole log (release/agent/readmodels.py writes it): that release skips those events.
FORCED_READ = "forced-read.json"


def forced_read_model_path(configured: Path, schema: int = SCHEMA_VERSION) -> Path:
    """The read model of a release forced onto a log it cannot wholly read: apart from the one
    releases that read every event keep, so theirs never misses what this one skips."""
    regular = read_model_path(configured, schema)
    return regular.with_name(f"{regular.stem}.forced{regular.suffix}")


def discard(path: Path) -> None:
    """Remove a read model's database and its WAL companions."""
    for file in _db_files(path):
        file.unlink()


def read_model_path(configured: Path, schema: int = SCHEMA_VERSION) -> Path:
    """The file of the read model with `schema`: the configured path for schema 1, and
    `<name>.v<N><suffix>` beside it for any other, so releases of different schemas each keep
    their own (a new one is built beside the one in use; a rollback finds its own still there).
    The host agent names them the same way when retention removes one (release/agent/readmodels.py).
    """
    if schema == 1:
        return configured
    return configured.with_name(f"{configured.stem}.v{schema}{configured.suffix}")


def rebuild(path: Path, store: EventStore) -> int:
    """Build a fresh projections database from the whole log and swap it in atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".rebuild")
    for leftover in _db_files(staging):
        leftover.unlink()
    fresh = Projections(staging)
    fresh.open()
    try:
        count = fresh.catch_up(store)
        fresh.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        fresh.close()
    # The old WAL belongs to the old file; left beside the new one it would be replayed into it.
    for stale in _db_files(path):
        if stale != path:
            stale.unlink()
    staging.replace(path)
    return count


@contextlib.contextmanager
def exclusive(path: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold the projections database for this process, or raise ProjectionsInUse (`wait`:
    until its holder lets go, as a release taking over from the running one does).

    The service holds it while it runs, so a rebuild cannot swap the file under it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o640)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ProjectionsInUse(path) from None
        yield
    finally:
        os.close(fd)


def _id_before(store: EventStore, position: LogPosition) -> str | None:
    """The event id on the line that ends at `position`, or None if no line ends there."""
    if position.last_file is None or position.offset == 0:
        return None
    size = 1024
    with (store.directory / position.last_file).open("rb") as handle:
        while True:  # most lines are short: read back only as far as the one before
            start = max(0, position.offset - size)
            handle.seek(start)
            chunk = handle.read(position.offset - start)
            if b"\n" in chunk[:-1] or start == 0 or size >= 1 << 20:
                break
            size *= 4
    if not chunk.endswith(b"\n"):
        return None
    line = chunk[:-1].rsplit(b"\n", 1)[-1]
    found = re.search(rb'"event_id": ?"([^"]+)"', line)
    return found.group(1).decode() if found else None


def _reason(exc: sqlite3.Error, path: Path) -> str:
    """An operator's line for a failed update: SQLite's words name the cause."""
    return f"the projections cannot be updated: {exc} ({path.name})"


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
