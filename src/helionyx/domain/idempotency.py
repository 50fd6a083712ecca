"""Idempotency keys: a retried request is answered from what its first attempt stored.

Semantics of the IETF httpapi draft "The Idempotency-Key HTTP Header Field": the same key with
the same request gives the original response and stores nothing; the same key with another
request is refused (422); a key whose first request is still running is refused (409). The key
and the request's fingerprint are stored in the event the request created, so they are exactly
as durable as the event and survive restarts for as long as the log; this index is rebuilt from
the log when the store opens. A request that stores nothing leaves no key: repeating it is
harmless by itself.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from helionyx.domain import events as ev
from helionyx.domain.errors import IdempotencyConflict, IdempotencyInFlight
from helionyx.domain.events import Event

KEY_FIELD = "idempotency_key"
FINGERPRINT_FIELD = "request_fingerprint"


def fingerprint(endpoint: str, request: Mapping[str, object]) -> str:
    """What identifies a request's content: the endpoint and its canonical JSON body."""
    canonical = json.dumps({"endpoint": endpoint, "request": request}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Claim:
    """A key and the fingerprint of the request presenting it."""

    key: str
    fingerprint: str


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
    todos: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class IdempotencyIndex:
    """Every key in the log, fed each event as the store reads or appends it."""

    def __init__(self) -> None:
        self._keys: dict[str, _Entry] = {}
        self._by_message: dict[str, _Entry] = {}
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

    def note(self, event: Event) -> None:
        """Learn from one event of the log (the store's observer)."""
        payload = event.payload
        if event.event_type == ev.MESSAGE_INGESTED and payload.get(KEY_FIELD):
            entry = _Entry(str(payload.get(FINGERPRINT_FIELD, "")), event.event_id)
            with self._lock:
                self._keys[str(payload[KEY_FIELD])] = entry
                self._by_message[event.event_id] = entry
            return
        derived = self._by_message.get(str(payload.get("message_id", "")))
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
        with self._lock:
            entry = self._keys.get(claim.key)
            if entry is None and claim.key in self._in_flight:
                raise IdempotencyInFlight(claim.key)
            if entry is None:
                self._in_flight.add(claim.key)
        if entry is not None:
            if entry.fingerprint != claim.fingerprint:
                raise IdempotencyConflict(claim.key)
            yield Stored(entry.event_id, tuple(entry.todos), tuple(entry.notes))
            return
        try:
            yield None
        finally:
            with self._lock:
                self._in_flight.discard(claim.key)
