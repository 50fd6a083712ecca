"""A log or read model damaged by hand: one line naming the file and the way out, and
`rebuild-projections` recovers everything the log can still tell (issue #25, finding 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helionyx.cli import main
from helionyx.domain import events as ev
from helionyx.domain.errors import DomainError
from helionyx.domain.events import Event
from helionyx.domain.store import EventStore
from helionyx.runtime import open_runtime
from tests.helionyx.servicekit import in_process_settings

TOKEN = "corruption-test-token-0123456789"


def write(data: Path, *texts: str) -> EventStore:
    store = EventStore(data / "events")
    store.open()
    for text in texts:
        message = Event(ev.MESSAGE_INGESTED, {"text": text, "source": "t"})
        store.append(
            [message, Event(ev.TODO_CAPTURED, {"text": text, "message_id": message.event_id})]
        )
    return store


def served_once(data: Path) -> None:
    """Start and stop the service's state once, so the read model records a position."""
    open_runtime(in_process_settings(data, TOKEN)).close()


def todos_after_start(data: Path) -> list[str]:
    runtime = open_runtime(in_process_settings(data, TOKEN))
    try:
        assert runtime.assistant.sync() is None
        return [t.text for t in runtime.assistant.todos()]
    finally:
        runtime.close()


def rebuild(data: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.chdir(data)
    monkeypatch.setenv("EVENT_STORE_PATH", str(data / "events"))
    monkeypatch.setenv("PROJECTIONS_DB_PATH", str(data / "p.db"))
    monkeypatch.setenv("HELIONYX_API_TOKEN", TOKEN)
    code = main(["rebuild-projections", "--env", "dev"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_a_duplicated_event_line_is_skipped_by_the_read_model_and_by_a_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = write(tmp_path, "first", "second")
    log = store.files()[-1]
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join([*lines, lines[1]]))  # the first todo's line, again
    write(tmp_path, "third")
    assert todos_after_start(tmp_path) == ["first", "second", "third"]
    assert "rebuilt" in rebuild(tmp_path, monkeypatch, capsys)
    assert todos_after_start(tmp_path) == ["first", "second", "third"]


def test_a_line_inserted_before_the_read_models_position_is_one_line_and_a_rebuild_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = write(tmp_path, "first", "second")
    served_once(tmp_path)
    log = store.files()[-1]
    lines = log.read_bytes().splitlines(keepends=True)
    inserted = Event(ev.TODO_CAPTURED, {"text": "inserted", "message_id": None}).to_line()
    log.write_bytes(b"".join([lines[0], inserted, *lines[1:]]))
    with pytest.raises(DomainError) as raised:
        open_runtime(in_process_settings(tmp_path, TOKEN))
    text = str(raised.value)
    assert f"projections database {tmp_path / 'p.db'} does not match the event log" in text
    assert text.endswith("run `helionyx rebuild-projections --env <env>`")
    rebuild(tmp_path, monkeypatch, capsys)
    assert todos_after_start(tmp_path) == ["inserted", "first", "second"]


def test_a_projections_file_of_garbage_is_one_line_and_a_rebuild_replaces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "first")
    (tmp_path / "p.db").write_bytes(b"this is not a database, " * 100)
    with pytest.raises(DomainError) as raised:
        open_runtime(in_process_settings(tmp_path, TOKEN))
    assert str(raised.value).startswith(
        f"projections database {tmp_path / 'p.db'} is not usable (file is not a database)"
    )
    rebuild(tmp_path, monkeypatch, capsys)
    assert todos_after_start(tmp_path) == ["first"]
