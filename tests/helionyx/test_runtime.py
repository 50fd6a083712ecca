"""Opening the service's state, and a release rolled back by force onto a log it cannot read."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helionyx import __commit__
from helionyx.api import create_app
from helionyx.domain.errors import EventLogCorrupt
from helionyx.domain.events import NOTE_CAPTURED, Event
from helionyx.domain.projections import FORCED_READ
from helionyx.domain.store import EventStore
from helionyx.runtime import open_runtime
from tests.helionyx.servicekit import in_process_settings

TOKEN = "runtime-test-token-0123456789"


def newer_note(text: str) -> bytes:
    """A NoteCaptured of schema version 2, as a release newer than this one writes it."""
    event = Event(NOTE_CAPTURED, {"text": text, "message_id": None}).to_dict()
    return (json.dumps({**event, "schema_version": 2}) + "\n").encode()


@pytest.fixture
def log_with_a_newer_event(tmp_path: Path) -> Path:
    """One note this release reads, one it cannot, one it reads again."""
    store = EventStore(tmp_path / "events")
    store.open()
    store.append([Event(NOTE_CAPTURED, {"text": "old", "message_id": None})])
    with store.files()[-1].open("ab") as log:
        log.write(newer_note("written by the newer release"))
    store.append([Event(NOTE_CAPTURED, {"text": "after", "message_id": None})])
    return tmp_path


def forced(data: Path, commit: str) -> None:
    record = {"commit": commit, "reason": "3.0.0 loses todos", "skips": ["NoteCaptured v2"]}
    (data / FORCED_READ).write_text(json.dumps(record))


@pytest.fixture
def served(log_with_a_newer_event: Path) -> Iterator[tuple[TestClient, Path]]:
    data = log_with_a_newer_event
    forced(data, __commit__)
    settings = in_process_settings(data, TOKEN)
    runtime = open_runtime(settings)
    with TestClient(create_app(settings, runtime.assistant)) as client:
        yield client, data
    runtime.close()


def test_a_log_holding_an_event_it_cannot_read_is_refused(log_with_a_newer_event: Path) -> None:
    with pytest.raises(EventLogCorrupt, match="unsupported schema_version 2 for NoteCaptured"):
        open_runtime(in_process_settings(log_with_a_newer_event, TOKEN))


def test_a_forced_rollback_left_for_another_release_changes_nothing(
    log_with_a_newer_event: Path,
) -> None:
    forced(log_with_a_newer_event, "0" * 40)
    with pytest.raises(EventLogCorrupt):
        open_runtime(in_process_settings(log_with_a_newer_event, TOKEN))


def test_forced_onto_the_log_it_serves_what_it_reads_and_says_what_it_skips(
    served: tuple[TestClient, Path],
) -> None:
    client, data = served
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert [n["text"] for n in client.get("/api/v1/notes", headers=auth).json()] == [
        "old",
        "after",
    ]
    assert client.get("/health/ready").status_code == 200
    assert client.get("/health").json()["unreadable_events"] == {"NoteCaptured v2": 1}
    # Its read model is its own: the regular one (a newer release's) is not even created.
    assert (data / "p.forced.db").exists() and not (data / "p.db").exists()


def test_what_it_writes_meanwhile_is_in_the_log_for_the_release_that_reads_it_all(
    served: tuple[TestClient, Path],
) -> None:
    client, data = served
    auth = {"Authorization": f"Bearer {TOKEN}"}
    done = client.post("/api/v1/ingest/message", headers=auth, json={"text": "note: meanwhile"})
    assert done.status_code in (200, 201), done.text
    lines = b"".join(p.read_bytes() for p in sorted((data / "events").glob("*.jsonl")))
    assert [json.loads(line)["payload"].get("text") for line in lines.splitlines()][-2:] == [
        "note: meanwhile",
        "meanwhile",
    ]
