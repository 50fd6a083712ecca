from pathlib import Path

import pytest

from helionyx.domain.assistant import HELP_TEXT, Assistant
from helionyx.domain.errors import UnknownTodo
from helionyx.domain.projections import Projections
from helionyx.domain.store import EventStore


@pytest.fixture
def assistant(tmp_path: Path) -> Assistant:
    store = EventStore(tmp_path / "events")
    store.open()
    projections = Projections(tmp_path / "projections.db")
    projections.open()
    return Assistant(store, projections)


def test_ingesting_records_the_message_and_what_it_contains(assistant: Assistant) -> None:
    result = assistant.ingest_message("todo: call Ann\nnote: Ann moved", source="api")
    assert result.todos == ("call Ann",)
    assert result.notes == ("Ann moved",)
    assert assistant.store.counts_by_type == {
        "MessageIngested": 1,
        "NoteCaptured": 1,
        "TodoCaptured": 1,
    }
    assert [t.text for t in assistant.todos()] == ["call Ann"]
    assert [n.text for n in assistant.notes()] == ["Ann moved"]


def test_completing_a_todo_removes_it_from_the_open_list(assistant: Assistant) -> None:
    assistant.ingest_message("todo: a\ntodo: b")
    done = assistant.complete_todo(1)
    assert done.done
    assert [t.number for t in assistant.todos()] == [2]
    count = assistant.store.count
    assistant.complete_todo(1)
    assert assistant.store.count == count, "completing twice records nothing new"
    with pytest.raises(UnknownTodo):
        assistant.complete_todo(9)


def test_interactions_answer_commands_and_capture_free_text(assistant: Assistant) -> None:
    assert assistant.interact("/start").text == HELP_TEXT
    assert assistant.interact("/todos").text == "No open todos."
    assert assistant.interact("todo: buy bread").text == "Captured. 1 todo(s) added."
    assert assistant.interact("/todos").text == "Open todos:\n1. buy bread"
    assert assistant.interact("/done 1").text == "Done: #1 buy bread"
    assert assistant.interact("/done 7").text == "Sorry, there is no todo #7."
    assert assistant.interact("/done x").text.startswith("Usage: /done N")
    assert assistant.interact("hello there").text == "Captured."


def test_state_reports_counts_and_whether_projections_are_current(assistant: Assistant) -> None:
    assistant.ingest_message("todo: x")
    state = assistant.state()
    assert state.total_events == 2
    assert state.projections_current
    assert state.last_event is not None and state.last_event.event_type == "TodoCaptured"
