import json
import multiprocessing
import resource
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from helionyx.domain import events as ev
from helionyx.domain.errors import EventLogCorrupt, StoreUnavailable
from helionyx.domain.events import Event
from helionyx.domain.store import EventStore


def message(text: str) -> Event:
    return Event(ev.MESSAGE_INGESTED, {"text": text, "source": "test", "chat_id": None})


def opened(directory: Path) -> EventStore:
    store = EventStore(directory)
    store.open()
    return store


def test_appended_events_are_read_back_in_order_after_reopening(tmp_path: Path) -> None:
    store = opened(tmp_path)
    sent = [message(f"m{i}") for i in range(5)]
    store.append(sent[:2])
    store.append(sent[2:])
    again = opened(tmp_path)
    assert list(again.read()) == sent
    assert again.count == 5
    assert again.last_event == sent[-1]
    assert list(again.read(start=3)) == sent[3:]


def test_opening_in_steps_indexes_the_log_as_opening_at_once(tmp_path: Path) -> None:
    # A successor reads the log step by step, yielding the CPU between steps (runtime.py).
    opened(tmp_path).append([message(f"m{i}") for i in range(25)])
    (tmp_path / "events-9999.jsonl").write_bytes(b'{"torn')  # a torn tail to quarantine
    stepped = EventStore(tmp_path)
    assert list(stepped.opening(every=10)) == [10, 20, 25]
    at_once = opened(tmp_path)
    assert (stepped.count, stepped.last_event, stepped.position()) == (
        at_once.count,
        at_once.last_event,
        at_once.position(),
    )
    assert len(stepped.quarantined) == 1 and at_once.quarantined == []


def test_a_torn_last_line_is_quarantined_and_good_history_kept(tmp_path: Path) -> None:
    store = opened(tmp_path)
    good = [message("one"), message("two")]
    store.append(good)
    log_file = store.files()[0]
    before = log_file.read_bytes()
    torn = message("three").to_line()[:25]
    with log_file.open("ab") as handle:
        handle.write(torn)

    reopened = EventStore(tmp_path)
    report = reopened.open()

    assert list(reopened.read()) == good
    assert log_file.read_bytes() == before
    assert len(report) == 1
    assert report[0].quarantine_file.read_bytes() == torn
    assert report[0].moved_bytes == len(torn)


def test_an_append_after_a_foreign_torn_write_does_not_glue_onto_it(tmp_path: Path) -> None:
    store = opened(tmp_path)
    store.append([message("one")])
    with store.files()[0].open("ab") as handle:
        handle.write(b'{"half')
    store.append([message("two")])
    assert [e.payload["text"] for e in opened(tmp_path).read()] == ["one", "two"]
    assert len(list(tmp_path.glob("*.torn-*"))) == 1


def test_a_corrupt_line_inside_the_log_stops_reading_with_its_location(tmp_path: Path) -> None:
    store = opened(tmp_path)
    store.append([message("one")])
    with store.files()[0].open("ab") as handle:
        handle.write(b"not json\n")
    with pytest.raises(EventLogCorrupt, match="line 2"):
        opened(tmp_path)


def test_log_order_stays_append_order_when_the_clock_goes_backwards(tmp_path: Path) -> None:
    now = [datetime(2026, 5, 2, tzinfo=UTC)]
    store = EventStore(tmp_path, clock=lambda: now[0])
    store.open()
    store.append([message("later day")])
    now[0] = datetime(2026, 5, 1, tzinfo=UTC)
    store.append([message("clock went back")])
    texts = [e.payload["text"] for e in opened(tmp_path).read()]
    assert texts == ["later day", "clock went back"]


def _writer(directory: str, name: str, count: int) -> None:
    store = EventStore(Path(directory))
    store.open()
    # Large payloads make a torn or interleaved write visible if locking were missing.
    for i in range(count):
        store.append([message(f"{name}-{i}-" + "x" * 5000)])


def test_two_processes_appending_at_once_never_interleave_lines(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), n, 150)) for n in ("a", "b")]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=60)
        assert w.exitcode == 0
    lines = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("events-*.jsonl"))).splitlines()
    assert len(lines) == 300
    texts = [json.loads(line)["payload"]["text"] for line in lines]
    for name in ("a", "b"):
        mine = [int(t.split("-")[1]) for t in texts if t.startswith(name + "-")]
        assert mine == list(range(150))


def test_a_failed_append_leaves_nothing_behind(tmp_path: Path) -> None:
    """A real write failure without root: the file-size limit (EFBIG) stands in for a full disk."""
    store = opened(tmp_path)
    store.append([message("kept")])
    log_file = store.files()[0]
    before = log_file.read_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 100, hard))
    try:
        with pytest.raises(StoreUnavailable, match="cannot be written"):
            store.append([message("x" * 500)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert log_file.read_bytes() == before, "cut back to where the write began"
    assert list(tmp_path.glob("*.torn-*")) == []
    assert store.count == 1
    store.append([message("after")])
    assert [e.payload["text"] for e in opened(tmp_path).read()] == ["kept", "after"]


def test_concurrent_appends_share_fsyncs_and_each_lands_once(tmp_path: Path) -> None:
    store = opened(tmp_path)
    sent = [[message(f"w{w}-{n}") for n in range(50)] for w in range(8)]

    def writer(events: list[Event]) -> None:
        for event in events:
            store.append([event])

    threads = [threading.Thread(target=writer, args=(batch,)) for batch in sent]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    read = list(opened(tmp_path).read())
    assert sorted(e.event_id for e in read) == sorted(e.event_id for b in sent for e in b)
    for batch in sent:  # each writer's events in its own order
        ids = [e.event_id for e in read if e.event_id in {x.event_id for x in batch}]
        assert ids == [e.event_id for e in batch]
    assert store.writes < 400, "appends that arrived during a write shared the next one"
