from datetime import datetime, timedelta, timezone

import pytest

from helionyx.domain import events as ev
from helionyx.domain.events import Event


def test_an_event_round_trips_through_its_json_line() -> None:
    event = Event(ev.MESSAGE_INGESTED, {"text": "héllo", "source": "api", "chat_id": None})
    line = event.to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert Event.from_line(line) == event


def test_occurred_at_is_stored_in_utc() -> None:
    local = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    event = Event(ev.NOTE_CAPTURED, {"text": "x"}, occurred_at=local)
    assert event.to_dict()["occurred_at"] == "2026-01-02T01:04:05Z"


def test_every_event_carries_type_version_and_id() -> None:
    data = Event(ev.TODO_CAPTURED, {"text": "x"}).to_dict()
    assert data["event_type"] == "TodoCaptured"
    assert data["schema_version"] == 1
    assert len(data["event_id"]) == 36


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"event_type":"MessageIngested"}\n', "missing"),
        (b"[1, 2]\n", "not a JSON object"),
        (
            b'{"event_id":"a","event_type":"Nope","schema_version":1,'
            b'"occurred_at":"2026-01-01T00:00:00Z","payload":{}}\n',
            "unknown event type",
        ),
        (
            b'{"event_id":"a","event_type":"NoteCaptured","schema_version":9,'
            b'"occurred_at":"2026-01-01T00:00:00Z","payload":{}}\n',
            "unsupported schema_version",
        ),
    ],
)
def test_incomplete_or_unknown_events_are_rejected(line: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Event.from_line(line)
