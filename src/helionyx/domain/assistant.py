"""The use cases: ingest a message, complete a todo, answer an interaction."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from helionyx.domain import events as ev
from helionyx.domain.errors import UnknownTodo
from helionyx.domain.events import Event
from helionyx.domain.extractor import Extractor, RuleBasedExtractor
from helionyx.domain.projections import Note, Projections, Todo
from helionyx.domain.store import EventStore

HELP_TEXT = (
    "Hi, I'm Helionyx. Send me anything and I'll keep it.\n"
    "Lines like 'todo: buy milk' become todos, 'note: …' become notes.\n"
    "/todos lists open todos, /done N completes todo N."
)


@dataclass(frozen=True)
class IngestResult:
    """The events one message produced."""

    event_id: str
    todos: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class StateSummary:
    """What the service holds."""

    total_events: int
    events_by_type: dict[str, int]
    last_event: Event | None
    projections_applied: int
    projections_current: bool


class Assistant:
    """The service's use cases over one event store and its projections."""

    def __init__(
        self,
        store: EventStore,
        projections: Projections,
        extractor: Extractor | None = None,
    ) -> None:
        self.store = store
        self.projections = projections
        self.extractor = extractor or RuleBasedExtractor()
        # One writer at a time inside this process; the store's flock covers other processes.
        self._lock = threading.Lock()

    def _record(self, events: Sequence[Event]) -> None:
        with self._lock:
            self.store.append(events)
            self.projections.apply(events)

    def ingest_message(
        self, text: str, *, source: str = "api", chat_id: str | None = None
    ) -> IngestResult:
        """Record a message and whatever todos and notes it contains."""
        message = Event(ev.MESSAGE_INGESTED, {"text": text, "source": source, "chat_id": chat_id})
        found = self.extractor.extract(text)
        derived = [
            Event(ev.TODO_CAPTURED, {"text": todo, "message_id": message.event_id})
            for todo in found.todos
        ] + [
            Event(ev.NOTE_CAPTURED, {"text": note, "message_id": message.event_id})
            for note in found.notes
        ]
        self._record([message, *derived])
        return IngestResult(message.event_id, found.todos, found.notes)

    def complete_todo(self, number: int) -> Todo:
        """Mark todo `number` done; completing a done todo is a no-op."""
        with self._lock:
            todo = self.projections.todo(number)
            if todo is None:
                raise UnknownTodo(number)
            if todo.done:
                return todo
            events = [Event(ev.TODO_COMPLETED, {"todo_event_id": todo.event_id})]
            self.store.append(events)
            self.projections.apply(events)
        done = self.projections.todo(number)
        assert done is not None
        return done

    def todos(self) -> list[Todo]:
        """Open todos."""
        return self.projections.todos()

    def notes(self) -> list[Note]:
        """All notes."""
        return self.projections.notes()

    def interact(self, text: str, *, chat_id: str | None = None, source: str = "telegram") -> str:
        """Answer one chat message with the reply to send back."""
        command, _, argument = text.strip().partition(" ")
        if command in ("/start", "/help"):
            return HELP_TEXT
        if command == "/todos":
            return _format_todos(self.todos())
        if command == "/done":
            return self._done_reply(argument.strip())
        result = self.ingest_message(text, source=source, chat_id=chat_id)
        parts = ["Captured."]
        if result.todos:
            parts.append(f"{len(result.todos)} todo(s) added.")
        if result.notes:
            parts.append(f"{len(result.notes)} note(s) added.")
        return " ".join(parts)

    def _done_reply(self, argument: str) -> str:
        if not argument.isdigit():
            return "Usage: /done N (N is the todo's number from /todos)."
        try:
            todo = self.complete_todo(int(argument))
        except UnknownTodo as exc:
            return f"Sorry, {exc}."
        return f"Done: #{todo.number} {todo.text}"

    def state(self) -> StateSummary:
        """Counts, the last event and whether projections are current."""
        applied = self.projections.applied
        return StateSummary(
            total_events=self.store.count,
            events_by_type=self.store.counts_by_type,
            last_event=self.store.last_event,
            projections_applied=applied,
            projections_current=applied == self.store.count,
        )


def _format_todos(todos: list[Todo]) -> str:
    if not todos:
        return "No open todos."
    lines = [f"{todo.number}. {todo.text}" for todo in todos]
    return "Open todos:\n" + "\n".join(lines)
