import sqlite3
from pathlib import Path

import pytest

from helionyx.domain.assistant import Assistant
from helionyx.domain.errors import (
    ProjectionsAhead,
    ProjectionSchemaMismatch,
    ProjectionsUnavailable,
)
from helionyx.domain.projections import Projections, rebuild
from helionyx.domain.store import EventStore


def make(tmp_path: Path) -> Assistant:
    store = EventStore(tmp_path / "events")
    store.open()
    projections = Projections(tmp_path / "p" / "projections.db")
    projections.open()
    projections.catch_up(store)
    return Assistant(store, projections)


def test_a_rebuild_from_events_equals_the_live_projections(tmp_path: Path) -> None:
    assistant = make(tmp_path)
    assistant.ingest_message("todo: one\nnote: n1")
    assistant.ingest_message("todo: two")
    assistant.complete_todo(1)
    live = assistant.projections.snapshot()
    rebuilt_path = tmp_path / "rebuilt.db"
    assert rebuild(rebuilt_path, assistant.store) == assistant.store.count
    rebuilt = Projections(rebuilt_path)
    rebuilt.open()
    assert rebuilt.snapshot() == live


def test_projections_catch_up_with_events_they_missed(tmp_path: Path) -> None:
    assistant = make(tmp_path)
    assistant.ingest_message("todo: first")
    assistant.projections.close()
    # Appended while these projections were closed: a crash between the two writes.
    other = Assistant(assistant.store, _open(tmp_path / "scratch.db"))
    other.ingest_message("todo: second")
    reopened = _open(tmp_path / "p" / "projections.db")
    assert reopened.catch_up(assistant.store) == 2
    assert [t.text for t in reopened.todos()] == ["first", "second"]


def _open(path: Path) -> Projections:
    projections = Projections(path)
    projections.open()
    return projections


def test_a_foreign_schema_version_is_refused_with_rebuild_advice(tmp_path: Path) -> None:
    assistant = make(tmp_path)
    assistant.projections.close()
    db = sqlite3.connect(tmp_path / "p" / "projections.db")
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(ProjectionSchemaMismatch, match="rebuild-projections"):
        _open(tmp_path / "p" / "projections.db")


def test_projections_ahead_of_the_log_are_refused(tmp_path: Path) -> None:
    assistant = make(tmp_path)
    assistant.ingest_message("hello")
    empty = EventStore(tmp_path / "empty")
    empty.open()
    with pytest.raises(ProjectionsAhead, match="rebuild-projections"):
        assistant.projections.catch_up(empty)


def test_a_failed_update_is_repaired_from_the_log_without_a_restart(tmp_path: Path) -> None:
    """SQLite's own size cap gives a real SQLITE_FULL: the first finding of the fault probe."""
    assistant = make(tmp_path)
    assistant.ingest_message("todo: one")
    pages = assistant.projections.db.execute("PRAGMA page_count").fetchone()[0]
    assistant.projections.db.execute(f"PRAGMA max_page_count = {pages}")
    for n in range(5):
        assistant.ingest_message(f"todo: big {n} " + "x" * 3900)  # in the log: no error
    assert assistant.sync() is not None and "full" in str(assistant.sync())
    with pytest.raises(ProjectionsUnavailable, match="database or disk is full"):
        assistant.todos()
    assistant.projections.db.execute("PRAGMA max_page_count = 1000000")
    assert len(assistant.todos()) == 6, "caught up from the log on the next read"
    assistant.projections.close()
    reopened = _open(tmp_path / "p" / "projections.db")
    assert reopened.catch_up(assistant.store) == 0, "a restart finds nothing to redo"
    rebuild(tmp_path / "rebuilt.db", assistant.store)
    assert reopened.snapshot() == _open(tmp_path / "rebuilt.db").snapshot()
