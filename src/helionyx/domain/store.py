"""The append-only JSONL event store.

One file per UTC day (`events-YYYY-MM-DD.jsonl`). Every write happens under an exclusive
`flock` on a lock file in the same directory, is written with O_APPEND and fsynced before any
append in it returns, so two processes never interleave lines and an acknowledged event survives
a crash. Appends from several threads that arrive while a write is under way are written and
fsynced together by the next one (group commit): one fsync for many, none acknowledged early.
A write that fails (a full disk, an I/O error) is cut back to where it began, so an event is
either in the log whole and acknowledged, or not in it at all. A torn last line left by a crash
is moved to a quarantine file beside the log, never dropped and never rewritten into history.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from helionyx.domain.errors import EventLogCorrupt, StoreUnavailable
from helionyx.domain.events import Event, UnreadableVersion, utc_now
from helionyx.logs import EveryInterval

log = logging.getLogger(__name__)

_PREFIX = "events-"
_SUFFIX = ".jsonl"
_LOCK_NAME = ".events.lock"
#: Held by the one process that appends, for as long as it runs (`writer`).
_WRITER_LOCK = ".writer.lock"
#: Appends are refused below this much free space: room for one largest request and its events.
MIN_FREE = 256 * 1024


@dataclass(frozen=True)
class QuarantinedTail:
    """Bytes cut from the end of a log file because they did not form a complete line."""

    log_file: Path
    quarantine_file: Path
    kept_bytes: int
    moved_bytes: int


@dataclass(frozen=True)
class LogPosition:
    """A point in the log: how many events precede it, and the file and byte offset it is at."""

    count: int
    last_file: str | None
    offset: int


START = LogPosition(0, None, 0)


@dataclass
class _Pending:
    """One caller's append waiting for the write that carries it."""

    data: bytes
    events: Sequence[Event]
    done: bool = False
    position: LogPosition | None = None
    error: StoreUnavailable | None = None


class EventStore:
    """Append-only event log in one directory."""

    def __init__(
        self,
        directory: Path,
        clock: Callable[[], datetime] = utc_now,
        *,
        fsync: bool = True,
        observer: Callable[[Event], None] | None = None,
        skip_unreadable: bool = False,
    ) -> None:
        self.directory = directory
        # Only a release rolled back by force reads past events it cannot read (runtime.py).
        self._skip_unreadable = skip_unreadable
        #: Events passed over because this release cannot read them, by kind (`NoteCaptured v2`).
        self.unreadable: dict[str, int] = {}
        self._clock = clock
        # Only benchmarks turn this off, to measure the ceiling; see docs/CONFIG.md.
        self._fsync = fsync
        self._observer = observer
        self._count = 0
        self._by_type: dict[str, int] = {}
        self._last: Event | None = None
        self.quarantined: list[QuarantinedTail] = []
        #: Lines (file name, byte offset) repeating an event already in the log: skipped, kept.
        self.duplicates: set[tuple[str, int]] = set()
        self._queue: list[_Pending] = []
        self._writing = False
        #: Writes (one fsync each) done by this process; appends / writes is the batching.
        self.writes = 0
        self._turn = threading.Condition()
        self._failed = EveryInterval(log)
        #: How far this store has taken the log in (for `refresh`).
        self._end = START
        self._read_end = START

    # -- opening -----------------------------------------------------------------------
    def open(self) -> list[QuarantinedTail]:
        """Create the directory if needed, quarantine torn tails and index the log."""
        for _ in self.opening():
            pass
        return self.quarantined

    def opening(self, every: int = 1000) -> Iterator[int]:
        """`open`, in steps: how many events it has indexed, every `every` of them (a start-up
        that must yield the CPU takes it step by step, `helionyx.successor`)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(
                f"event store directory {self.directory} cannot be created: "
                f"{exc.strerror or exc}; check EVENT_STORE_PATH"
            ) from None
        with self._locked():
            found = [q for path in self.files() if (q := self._repair_tail(path)) is not None]
        self.quarantined = found
        self._count, self._by_type, self._last = 0, {}, None
        self.unreadable = {}
        self.duplicates = set()
        self._read_end = START
        for event in self.read():
            self._note(event)
            if self._count % every == 0:
                yield self._count
        # Passed over, but in the log all the same: positions count them.
        self._count += sum(self.unreadable.values()) + len(self.duplicates)
        self._end = self._read_end
        yield self._count

    def refresh(self) -> int:
        """Take in what another process appended since this store read the log (at a
        hand-over, what the previous writer wrote last); how many events that was."""
        before = self._count
        for event, position in self.read_after(self._end):
            self._end = position
            if event is None:
                self._count += 1  # passed over, counted in positions as `open` counts it
            else:
                self._note(event)
        return self._count - before

    def _note(self, event: Event) -> None:
        self._count += 1
        self._by_type[event.event_type] = self._by_type.get(event.event_type, 0) + 1
        self._last = event
        if self._observer is not None:
            self._observer(event)

    def files(self) -> list[Path]:
        """The log files in append order."""
        return sorted(self.directory.glob(f"{_PREFIX}*{_SUFFIX}"))

    # -- writing -----------------------------------------------------------------------
    def append(self, events: Sequence[Event]) -> LogPosition:
        """Durably append events as one unit; returns the position after them.

        Raises StoreUnavailable, with nothing of these events in the log, when it cannot.
        """
        if not events:
            return self.position()
        item = _Pending(b"".join(event.to_line() for event in events), events)
        with self._turn:
            self._queue.append(item)
            while self._writing and not item.done:
                self._turn.wait()
            if not item.done:
                # Nobody is writing: this caller writes everything queued so far.
                self._writing = True
                batch, self._queue = self._queue, []
        if not item.done:
            try:
                self._write(batch)
            finally:
                with self._turn:
                    for pending in batch:
                        pending.done = True
                    self._writing = False
                    self._turn.notify_all()
        if item.error is not None:
            raise item.error
        assert item.position is not None
        return item.position

    def _write(self, batch: list[_Pending]) -> None:
        """One write and one fsync for a batch; each caller gets its own position or error."""
        try:
            with self._locked():
                path = self._target_file()
                if path.exists():
                    self._repair_tail(path)
                start = self._write_whole(path, b"".join(p.data for p in batch))
                self.writes += 1
        except OSError as exc:
            error = StoreUnavailable(_reason(exc, self.directory))
            self._failed.log(
                logging.ERROR, "event log: an append failed, nothing stored: %s", error
            )
            for pending in batch:
                pending.error = error
            return
        offset = start
        for pending in batch:
            offset += len(pending.data)
            for event in pending.events:
                self._note(event)
            pending.position = LogPosition(self._count, path.name, offset)
        self._end = LogPosition(self._count, path.name, offset)

    def _write_whole(self, path: Path, data: bytes) -> int:
        """Append `data` whole or not at all; returns the offset it starts at. Caller locks."""
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            start = os.fstat(fd).st_size
            try:
                _write_all(fd, data)
                if self._fsync:
                    os.fsync(fd)
            except OSError:
                # Never acknowledged, so it must not stay: cut the file back to where it was.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                    os.fsync(fd)
                if created:
                    with contextlib.suppress(OSError):
                        path.unlink()
                raise
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.directory)
        return start

    def _target_file(self) -> Path:
        # Never go back to an earlier day's file when the clock moves backwards: log order
        # must stay append order.
        today = self.directory / f"{_PREFIX}{self._clock().date().isoformat()}{_SUFFIX}"
        existing = self.files()
        if existing and existing[-1].name > today.name:
            return existing[-1]
        return today

    # -- reading -----------------------------------------------------------------------
    def read(self, start: int = 0) -> Iterator[Event]:
        """Every complete event in append order, skipping the first `start`.

        A line repeating an event already read (a copy made by hand, a botched restore) is
        passed over and remembered in `duplicates`, so the read model never applies it twice.
        """
        index = 0
        seen: set[str] = set()
        for path in self.files():
            offset = 0
            with path.open("rb") as handle:
                for line_number, line in enumerate(handle, start=1):
                    if not line.endswith(b"\n"):
                        # A tail still being written by another process: not an event yet.
                        break
                    at, offset = offset, offset + len(line)
                    index += 1
                    self._read_end = LogPosition(index, path.name, offset)
                    try:
                        event = Event.from_line(line)
                    except UnreadableVersion as exc:
                        if not self._skip_unreadable:
                            raise EventLogCorrupt(path, line_number, str(exc)) from exc
                        if index > start:
                            self.unreadable[exc.kind] = self.unreadable.get(exc.kind, 0) + 1
                        continue
                    except ValueError as exc:
                        raise EventLogCorrupt(path, line_number, str(exc)) from exc
                    if event.event_id in seen:
                        self._duplicate(path, line_number, at, event.event_id)
                        continue
                    seen.add(event.event_id)
                    if index > start:
                        yield event

    def _duplicate(self, path: Path, line_number: int, offset: int, event_id: str) -> None:
        if (path.name, offset) not in self.duplicates:
            self.duplicates.add((path.name, offset))
            log.warning(
                "event log %s line %d repeats event %s, which is earlier in the log: skipped "
                "(the log is never rewritten; remove the line by hand with the service stopped)",
                path,
                line_number,
                event_id,
            )

    def read_after(self, position: LogPosition) -> Iterator[tuple[Event | None, LogPosition]]:
        """Every complete event after `position`, each with the position just after it (None
        for one passed over as unreadable, when this store skips those)."""
        count = position.count
        for path in self.files():
            if position.last_file is not None and path.name < position.last_file:
                continue
            start = position.offset if path.name == position.last_file else 0
            with path.open("rb") as handle:
                if start > os.fstat(handle.fileno()).st_size:
                    raise EventLogCorrupt(path, 0, f"shorter than the recorded offset {start}")
                handle.seek(start)
                offset = start
                for line in handle:
                    if not line.endswith(b"\n"):
                        break  # a tail still being written by another process: not an event yet
                    offset += len(line)
                    count += 1
                    event: Event | None
                    if (path.name, offset - len(line)) in self.duplicates:
                        yield None, LogPosition(count, path.name, offset)
                        continue
                    try:
                        event = Event.from_line(line)
                    except ValueError as exc:
                        if not (self._skip_unreadable and isinstance(exc, UnreadableVersion)):
                            raise EventLogCorrupt(
                                path, 0, str(exc), offset=offset - len(line)
                            ) from exc
                        event = None
                    yield event, LogPosition(count, path.name, offset)

    def tail(self, limit: int, event_type: str | None = None) -> list[Event]:
        """The last `limit` events (of one type if given), oldest first, reading only the end."""
        found: list[Event] = []
        for path in reversed(self.files()):
            for line in _lines_backwards(path):
                try:
                    event = Event.from_line(line)
                except UnreadableVersion:
                    continue  # `events` shows what this release can read
                except ValueError as exc:
                    for _ in self.read():
                        pass  # names the line, counted from the start as everywhere else
                    raise EventLogCorrupt(path, 0, str(exc)) from exc
                if event_type in (None, event.event_type):
                    found.append(event)
                    if len(found) == limit:
                        return found[::-1]
        return found[::-1]

    @property
    def count(self) -> int:
        """Number of events this store has seen (opened plus appended)."""
        return self._count

    @property
    def counts_by_type(self) -> dict[str, int]:
        """Number of events of each type."""
        return dict(sorted(self._by_type.items()))

    @property
    def last_event(self) -> Event | None:
        """The most recent event, if any."""
        return self._last

    def position(self) -> LogPosition:
        """The current end of the log."""
        files = self.files()
        if not files:
            return LogPosition(self._count, None, 0)
        return LogPosition(self._count, files[-1].name, files[-1].stat().st_size)

    def writable(self) -> str | None:
        """None when appends can succeed, else the reason they cannot."""
        if not self.directory.is_dir():
            return f"event store directory {self.directory} does not exist"
        if not os.access(self.directory, os.W_OK | os.X_OK):
            return f"event store directory {self.directory} is not writable"
        for path in self.files()[-1:]:
            if not os.access(path, os.W_OK):
                return f"event log {path} is not writable"
        stat = os.statvfs(self.directory)
        if stat.f_bavail * stat.f_frsize < MIN_FREE:
            # Refused before the write: a full disk must not take half an append.
            return (
                f"the event log cannot be written: No space left on device (less than "
                f"{MIN_FREE // 1024} KiB free under {self.directory})"
            )
        return None

    # -- internals ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _repair_tail(self, path: Path) -> QuarantinedTail | None:
        """Move bytes after the last newline into a quarantine file. Caller holds the lock."""
        size = path.stat().st_size
        if size == 0:
            return None
        with path.open("rb") as handle:
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return None
            keep = _last_newline_end(handle, size)
            handle.seek(keep)
            torn = handle.read()
        stamp = self._clock().strftime("%Y%m%dT%H%M%S%fZ")
        quarantine = path.with_name(f"{path.name}.torn-{stamp}")
        # The torn bytes reach disk before they leave the log, so a crash here loses nothing.
        fd = os.open(quarantine, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            _write_all(fd, torn)
            os.fsync(fd)
        except OSError:
            # A full disk: keep the tail where it is rather than leave an empty quarantine.
            os.close(fd)
            quarantine.unlink()
            raise
        os.close(fd)
        _fsync_dir(self.directory)
        os.truncate(path, keep)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        report = QuarantinedTail(path, quarantine, keep, len(torn))
        log.warning(
            "event log %s ended in a torn line: kept %d bytes, moved %d bytes to %s",
            path.name,
            keep,
            len(torn),
            quarantine.name,
        )
        return report


@contextlib.contextmanager
def writer(directory: Path, *, wait: bool = False) -> Iterator[None]:
    """Be the one process that appends to the log in `directory` while this is held.

    A release taking over from the running one (`helionyx.handover`) waits here until that one
    has finished its last request and let go; any other start refuses to share the log.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / _WRITER_LOCK, os.O_RDWR | os.O_CREAT, 0o640)
    except OSError as exc:
        raise StoreUnavailable(
            f"event store directory {directory} cannot be used: {exc.strerror or exc}; "
            "check EVENT_STORE_PATH"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreUnavailable(
                f"another process is writing the event log in {directory}: stop it first"
            ) from None
        yield
    finally:
        os.close(fd)


def _last_newline_end(handle: object, size: int) -> int:
    """Offset just after the last newline in a binary file (0 if there is none)."""
    assert hasattr(handle, "seek")
    assert hasattr(handle, "read")
    block = 64 * 1024
    end = size
    while end > 0:
        start = max(0, end - block)
        handle.seek(start)
        chunk: bytes = handle.read(end - start)
        found = chunk.rfind(b"\n")
        if found != -1:
            return start + found + 1
        end = start
    return 0


def _lines_backwards(path: Path, block: int = 64 * 1024) -> Iterator[bytes]:
    """Complete lines of a file, last first; a torn last line (no newline yet) is not one."""
    with path.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        rest = b""
        first = True
        while end > 0:
            start = max(0, end - block)
            handle.seek(start)
            lines = (handle.read(end - start) + rest).split(b"\n")
            end = start
            if first:
                lines.pop()  # what follows the last newline: nothing, or a torn tail
                first = False
            # Unless the file's start was read, the first piece is the end of an earlier line.
            rest = lines.pop(0) if end > 0 else b""
            for line in reversed(lines):
                yield line + b"\n"


def _write_all(fd: int, data: bytes) -> None:
    """Write all of `data`; the write that cannot (a full disk) raises with the real cause."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def _reason(exc: OSError, directory: Path) -> str:
    """An operator's line for a failed write: the cause first, then where."""
    cause = exc.strerror or str(exc)
    where = Path(exc.filename).name if exc.filename else directory
    return f"the event log cannot be written: {cause} ({where})"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
