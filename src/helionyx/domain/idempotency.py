"""Idempotency keys: a retried request is answered from what its first attempt stored.

Semantics of the IETF httpapi draft "The Idempotency-Key HTTP Header Field": the same key with
the same request gives the original response and stores nothing; the same key with another
request is refused (422); a key whose first request is still running is refused (409). The key
and the request's fingerprint are stored in the event the request created, so they are exactly
as durable as the event and survive restarts for as long as the log; this index is rebuilt from
the log when the store opens. A request that stores nothing leaves no key: repeating it is
harmless by itself.

Keys belong to their caller: API clients (the one API token) in scope "api", the Telegram adapter
in "telegram-bot:<bot id>", keyed by the update's id; so a client's "telegram-1" never meets
update 1, and a new bot's update 1 never meets an old bot's. A key is remembered for KEY_WINDOW
after its request (Telegram starts update ids afresh after a week without updates): long enough
for any retry, and the index holds no more than a window's worth of keys.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from helionyx.domain import events as ev
from helionyx.domain.errors import IdempotencyConflict, IdempotencyInFlight
from helionyx.domain.events import Event, utc_now

KEY_FIELD = "idempotency_key"
FINGERPRINT_FIELD = "request_fingerprint"
SCOPE_FIELD = "idempotency_scope"
#: Keys from before scopes existed were all sent with the header, by API clients and the bot.
LEGACY_SCOPE = "api"
API_SCOPE = "api"
KEY_WINDOW = timedelta(hours=24)


def bot_scope(bot_id: int) -> str:
    """The key scope of one Telegram bot."""
    return f"telegram-bot:{bot_id}"


def fingerprint(endpoint: str, request: Mapping[str, object]) -> str:
    """What identifies a request's content: the endpoint and its canonical JSON body."""
    canonical = json.dumps({"endpoint": endpoint, "request": request}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Claim:
    """A key and the fingerprint of the request presenting it."""

    key: str
    fingerprint: str
    scope: str = API_SCOPE


@dataclass(frozen=True)
class Stored:
    """What the first request with a key stored: its message and what was extracted."""

    event_id: str
    todos: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass
class _Entry:
    fingerprint: str
    event_id: str
    at: datetime
    todos: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class IdempotencyIndex:
    """Every key in the log, fed each event as the store reads or appends it."""

    def __init__(
        self, window: timedelta = KEY_WINDOW, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.window = window
        self._clock = clock
        self._keys: dict[tuple[str, str], _Entry] = {}
        self._by_message: dict[str, _Entry] = {}
        self._in_flight: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def note(self, event: Event) -> None:
        """Learn from one event of the log (the store's observer)."""
        payload = event.payload
        if event.event_type == ev.MESSAGE_INGESTED and payload.get(KEY_FIELD):
            if self._expired(event.occurred_at):
                return  # past the window: forgotten, as if never sent
            entry = _Entry(
                str(payload.get(FINGERPRINT_FIELD, "")), event.event_id, event.occurred_at
            )
            slot = (str(payload.get(SCOPE_FIELD) or LEGACY_SCOPE), str(payload[KEY_FIELD]))
            with self._lock:
                self._keys[slot] = entry
                self._by_message[event.event_id] = entry
            return
        derived = self._by_message.get(str(payload.get("message_id")))
        if derived is None:
            return
        if event.event_type == ev.TODO_CAPTURED:
            derived.todos.append(str(payload.get("text", "")))
        elif event.event_type == ev.NOTE_CAPTURED:
            derived.notes.append(str(payload.get("text", "")))

    @contextmanager
    def claimed(self, claim: Claim | None) -> Iterator[Stored | None]:
        """What the key already stored (a replay), or None while this request stores it."""
        if claim is None:
            yield None
            return
        slot = (claim.scope, claim.key)
        with self._lock:
            entry = self._keys.get(slot)
            if entry is not None and self._expired(entry.at):
                self._forget(slot, entry)
                entry = None
            if entry is None and slot in self._in_flight:
                raise IdempotencyInFlight(claim.key)
            if entry is None:
                self._in_flight.add(slot)
        if entry is not None:
            if entry.fingerprint != claim.fingerprint:
                raise IdempotencyConflict(claim.key)
            yield Stored(entry.event_id, tuple(entry.todos), tuple(entry.notes))
            return
        try:
            yield None
        finally:
            with self._lock:
                self._in_flight.discard(slot)

    def _expired(self, at: datetime) -> bool:
        return self._clock() - at > self.window

    def _forget(self, slot: tuple[str, str], entry: _Entry) -> None:
        del self._keys[slot]
        self._by_message.pop(entry.event_id, None)
