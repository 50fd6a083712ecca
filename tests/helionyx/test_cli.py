"""`python -m helionyx events` and the start-up errors an operator meets, in-process."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helionyx.cli import main
from helionyx.domain import events as ev
from helionyx.domain.events import Event
from helionyx.domain.store import EventStore

SECRET = "s3cret-token-value-that-must-not-leak"


@pytest.fixture
def settings_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no .env.dev here
    monkeypatch.setenv("EVENT_STORE_PATH", str(tmp_path / "events"))
    monkeypatch.setenv("PROJECTIONS_DB_PATH", str(tmp_path / "p.db"))
    monkeypatch.setenv("HELIONYX_API_TOKEN", SECRET)
    return tmp_path / "events"


def fill(directory: Path, count: int, days: int = 3) -> None:
    """`count` messages spread over `days` daily files, numbered in append order."""
    start = datetime(2026, 12, 1, tzinfo=UTC)
    per_day = -(-count // days)
    for day in range(days):
        store = EventStore(directory, clock=_fixed(start + timedelta(days=day)), fsync=False)
        store.open()
        numbers = range(day * per_day, min(count, (day + 1) * per_day))
        store.append(
            [Event(ev.MESSAGE_INGESTED, {"text": f"m{n}", "source": "t"}) for n in numbers]
        )


def _fixed(when: datetime) -> Callable[[], datetime]:
    return lambda: when


@pytest.mark.parametrize("limit", ["0", "-5", "ten"])
def test_events_refuses_a_count_that_is_not_positive(
    settings_env: Path, limit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["events", "--env", "dev", "-n", limit])
    assert raised.value.code == 2
    assert "-n/--limit" in capsys.readouterr().err


def test_events_shows_the_last_n_in_order_across_daily_files(
    settings_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(settings_env, 30)
    (settings_env / sorted(p.name for p in settings_env.glob("*.jsonl"))[-1]).open("ab").write(
        b'{"torn'
    )
    assert main(["events", "--env", "dev", "-n", "12", "--json"]) == 0
    texts = [
        line.split('"text": "')[1].split('"')[0] for line in capsys.readouterr().out.splitlines()
    ]
    assert texts == [f"m{n}" for n in range(18, 30)]


def test_events_reads_only_the_end_of_a_long_log(settings_env: Path) -> None:
    fill(settings_env, 20_000, days=1)
    tracemalloc.start()
    assert main(["events", "--env", "dev", "-n", "10"]) == 0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # The whole log parsed into events takes tens of MB; the tail of ten, a few blocks.
    assert peak < 2_000_000, peak


def test_events_never_creates_a_missing_store(
    settings_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["events", "--env", "dev"]) == 2
    assert capsys.readouterr().err.startswith("helionyx: error: no event store at ")
    assert not settings_env.exists()


def test_an_event_store_path_that_cannot_be_created_is_one_line(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVENT_STORE_PATH", "/proc/helionyx-events")
    assert main(["rebuild-projections", "--env", "dev"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "event store directory /proc/helionyx-events cannot be created" in err
