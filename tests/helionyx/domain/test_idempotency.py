"""The idempotency index on its own: what it learns from the log, and for how long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from helionyx.domain import events as ev
from helionyx.domain.errors import IdempotencyConflict
from helionyx.domain.events import Event
from helionyx.domain.idempotency import (
    FINGERPRINT_FIELD,
    KEY_FIELD,
    SCOPE_FIELD,
    Claim,
    IdempotencyIndex,
    Stored,
    bot_scope,
    fingerprint,
)

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
FP = fingerprint("/api/v1/ingest/message", {"text": "buy milk"})


def ingested(key: str, *, scope: str | None = None, at: datetime = T0) -> Event:
    payload = {"text": "buy milk", KEY_FIELD: key, FINGERPRINT_FIELD: FP}
    if scope is not None:
        payload[SCOPE_FIELD] = scope
    return Event(ev.MESSAGE_INGESTED, payload, event_id=f"m-{key}", occurred_at=at)


def replay(index: IdempotencyIndex, claim: Claim) -> Stored | None:
    with index.claimed(claim) as stored:
        return stored


def test_a_fingerprint_is_the_same_whatever_the_order_of_the_body_and_across_releases() -> None:
    body = {"text": "buy milk", "chat_id": 7}
    same = fingerprint("/api/v1/ingest/message", dict(reversed(list(body.items()))))
    assert fingerprint("/api/v1/ingest/message", body) == same
    # Stored in the log: a release that computed it differently would refuse every retry.
    assert same == "ea3fec26944a4d639856ee2ff9b80ea5"


def test_a_key_replays_its_message_with_what_was_extracted_from_it() -> None:
    index = IdempotencyIndex(clock=lambda: T0)
    index.note(ingested("k1", scope="api"))
    index.note(Event(ev.TODO_CAPTURED, {"message_id": "m-k1", "text": "buy milk"}))
    index.note(Event(ev.NOTE_CAPTURED, {"message_id": "m-k1", "text": "milk is out"}))
    index.note(Event(ev.NOTE_CAPTURED, {"message_id": "m-other", "text": "not this one"}))
    assert replay(index, Claim("k1", FP)) == Stored("m-k1", ("buy milk",), ("milk is out",))
    with pytest.raises(IdempotencyConflict):
        replay(index, Claim("k1", "another request"))


def test_a_key_stored_before_scopes_belongs_to_the_api() -> None:
    index = IdempotencyIndex(clock=lambda: T0)
    index.note(ingested("legacy"))
    assert replay(index, Claim("legacy", FP)) == Stored("m-legacy", (), ())
    assert replay(index, Claim("legacy", FP, scope=bot_scope(1))) is None


def test_a_key_field_on_another_kind_of_event_is_no_key() -> None:
    index = IdempotencyIndex(clock=lambda: T0)
    index.note(Event(ev.NOTE_CAPTURED, {"text": "x", KEY_FIELD: "k", FINGERPRINT_FIELD: FP}))
    assert replay(index, Claim("k", FP)) is None


@pytest.mark.parametrize(
    ("later", "remembered"),
    [(timedelta(hours=24), True), (timedelta(hours=24, microseconds=1), False)],
)
def test_a_key_is_remembered_for_exactly_its_window(later: timedelta, remembered: bool) -> None:
    now = [T0]
    index = IdempotencyIndex(window=timedelta(hours=24), clock=lambda: now[0])
    index.note(ingested("k"))
    now[0] = T0 + later
    assert (replay(index, Claim("k", FP)) is not None) is remembered
    # Read from the log that late, it is not learnt at all.
    late = IdempotencyIndex(window=timedelta(hours=24), clock=lambda: now[0])
    late.note(ingested("k"))
    assert (replay(late, Claim("k", FP)) is not None) is remembered


def test_a_bots_key_is_its_own_not_the_apis() -> None:
    index = IdempotencyIndex(clock=lambda: T0)
    index.note(ingested("7", scope=bot_scope(1)))
    assert replay(index, Claim("7", FP)) is None
    assert replay(index, Claim("7", FP, scope=bot_scope(2))) is None
    assert replay(index, Claim("7", FP, scope=bot_scope(1))) == Stored("m-7", (), ())


def test_what_was_extracted_without_a_text_replays_as_empty() -> None:
    index = IdempotencyIndex(clock=lambda: T0)
    index.note(ingested("k"))
    index.note(Event(ev.TODO_CAPTURED, {"message_id": "m-k"}))
    index.note(Event(ev.NOTE_CAPTURED, {"message_id": "m-k"}))
    assert replay(index, Claim("k", FP)) == Stored("m-k", ("",), ("",))
