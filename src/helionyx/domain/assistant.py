"""The use cases: ingest a message, complete a todo, answer an interaction."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from helionyx.domain import events as ev
from helionyx.domain.errors import (
    ProjectionsAhead,
    ProjectionsMismatch,
    ProjectionsUnavailable,
    StoreUnavailable,
    UnknownTodo,
)
from helionyx.domain.events import Event
from helionyx.domain.extractor import Extractor, RuleBasedExtractor
from helionyx.domain.idempotency import (
    FINGERPRINT_FIELD,
    KEY_FIELD,
    SCOPE_FIELD,
    Claim,
    IdempotencyIndex,
)
from helionyx.domain.projections import Note, Projections, Todo
from helionyx.domain.store import EventStore
from helionyx.logs import EveryInterval

log = logging.getLogger(__name__)

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
    replayed: bool = False


@dataclass(frozen=True)
class Reply:
    """The text to send back to a chat, and whether it answers a retried request."""

    text: str
    replayed: bool = False


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
        keys: IdempotencyIndex | None = None,
    ) -> None:
        self.store = store
        self.projections = projections
        self.extractor = extractor or RuleBasedExtractor()
        self.keys = keys or IdempotencyIndex()
        # Completing a todo reads the read model and then writes; two at once would both write.
        self._completing = threading.Lock()
        self._lag: str | None = None
        self._refused = EveryInterval(log)

    # -- the read model follows the log --------------------------------------------------
    def sync(self) -> str | None:
        """Catch the read model up with the log; the reason it cannot, or None."""
        try:
            self.projections.catch_up(self.store)
        except (ProjectionsUnavailable, ProjectionsAhead, ProjectionsMismatch) as exc:
            reason = str(exc)
            if reason != self._lag:
                log.warning("projections: %s; repaired from the log once possible", reason)
            self._lag = reason
            return reason
        if self._lag is not None:
            log.info("projections: caught up with the log again")
        self._lag = None
        return None

    def _current(self) -> Projections:
        """The read model, current with the log, or ProjectionsUnavailable."""
        reason = self.sync()
        if reason is not None:
            raise ProjectionsUnavailable(reason)
        return self.projections

    def _record(self, events: Sequence[Event]) -> None:
        reason = self.store.writable()
        if reason is not None:
            # The read model's write-ahead log may hold the space the log needs: give it back.
            self.projections.compact()
            reason = self.store.writable()
        if reason is not None:
            self._refused.log(logging.WARNING, "event log: refused a write: %s", reason)
            raise StoreUnavailable(reason)
        self.store.append(events)
        # The events are in the log: a read model that cannot follow now is repaired later,
        # and the request has succeeded either way.
        self.sync()

    # -- use cases ---------------------------------------------------------------------
    def ingest_message(
        self,
        text: str,
        *,
        source: str = "api",
        chat_id: str | None = None,
        claim: Claim | None = None,
    ) -> IngestResult:
        """Record a message and whatever todos and notes it contains, once per key."""
        with self.keys.claimed(claim) as stored:
            if stored is not None:
                return IngestResult(stored.event_id, stored.todos, stored.notes, replayed=True)
            payload: dict[str, object] = {"text": text, "source": source, "chat_id": chat_id}
            if claim is not None:
                payload[KEY_FIELD] = claim.key
                payload[FINGERPRINT_FIELD] = claim.fingerprint
                payload[SCOPE_FIELD] = claim.scope
            message = Event(ev.MESSAGE_INGESTED, payload)
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
        with self._completing:
            todo = self._current().todo(number)
            if todo is None:
                raise UnknownTodo(number)
            if todo.done:
                return todo
            self._record([Event(ev.TODO_COMPLETED, {"todo_event_id": todo.event_id})])
        done = self._current().todo(number)
        assert done is not None
        return done

    def todos(self, *, include_done: bool = False) -> list[Todo]:
        """Open todos (all with `include_done`), as the log says."""
        return self._current().todos(include_done=include_done)

    def notes(self) -> list[Note]:
        """All notes."""
        return self._current().notes()

    def interact(
        self,
        text: str,
        *,
        chat_id: str | None = None,
        source: str = "telegram",
        claim: Claim | None = None,
    ) -> Reply:
        """Answer one chat message with the reply to send back."""
        command, _, argument = text.strip().partition(" ")
        if command in ("/start", "/help"):
            return Reply(HELP_TEXT)
        if command == "/todos":
            return Reply(_format_todos(self.todos()))
        if command == "/done":
            return Reply(self._done_reply(argument.strip()))
        result = self.ingest_message(text, source=source, chat_id=chat_id, claim=claim)
        parts = ["Captured."]
        if result.todos:
            parts.append(f"{len(result.todos)} todo(s) added.")
        if result.notes:
            parts.append(f"{len(result.notes)} note(s) added.")
        return Reply(" ".join(parts), replayed=result.replayed)

    def _done_reply(self, argument: str) -> str:
        # isdigit() alone accepts "²", which int() refuses.
        if not (argument.isascii() and argument.isdigit()):
            return "Usage: /done N (N is the todo's number from /todos)."
        try:
            todo = self.complete_todo(int(argument))
        except UnknownTodo as exc:
            return f"Sorry, {exc}."
        return f"Done: #{todo.number} {todo.text}"

    def state(self) -> StateSummary:
        """Counts, the last event and whether projections are current."""
        self.sync()
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
