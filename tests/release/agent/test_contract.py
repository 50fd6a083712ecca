"""What an event log holds against what a release can read."""

from __future__ import annotations

import json
from pathlib import Path

from release.agent.contract import LEGACY, Unreadable, log_versions, of_manifest, unreadable
from release.agent.protocol import DataContract, EventVersion

V2_NOTES: DataContract = {
    "projections": 1,
    "events": {
        "NoteCaptured": {"reads": 2, "writes": 2},
        "TodoCaptured": {"reads": 1, "writes": 1},
    },
}


def write_log(directory: Path, *events: tuple[str, int, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"event_type": kind, "schema_version": version, "occurred_at": at})
        for kind, version, at in events
    ]
    (directory / "events-2026-12-01.jsonl").write_text("\n".join(lines) + "\n{torn")
    return directory


def test_the_log_says_the_highest_version_of_each_type_and_when_it_began(tmp_path: Path) -> None:
    log = write_log(
        tmp_path,
        ("NoteCaptured", 1, "10:00"),
        ("NoteCaptured", 2, "11:00"),
        ("NoteCaptured", 2, "12:00"),
        ("TodoCaptured", 1, "10:30"),
    )
    assert log_versions(log) == {
        "NoteCaptured": {"version": 2, "first_at": "11:00"},
        "TodoCaptured": {"version": 1, "first_at": "10:30"},
    }


def test_a_release_that_reads_every_version_in_the_log_is_safe(tmp_path: Path) -> None:
    log = write_log(tmp_path, ("NoteCaptured", 2, "11:00"))
    assert unreadable(V2_NOTES, log_versions(log)) == []


def test_an_older_reader_is_told_what_it_cannot_read(tmp_path: Path) -> None:
    log = write_log(tmp_path, ("NoteCaptured", 1, "10:00"), ("NoteCaptured", 2, "11:00"))
    assert unreadable(LEGACY, log_versions(log)) == [Unreadable("NoteCaptured", 2, 1, "11:00")]


def test_an_empty_or_absent_log_is_readable_by_anyone(tmp_path: Path) -> None:
    assert unreadable(LEGACY, log_versions(tmp_path / "none")) == []


def test_a_manifest_without_a_contract_is_legacy() -> None:
    assert of_manifest({"version": "0.1.0"}) == LEGACY
    assert of_manifest({"data_contract": V2_NOTES}) == V2_NOTES


def test_odd_lines_in_the_log_are_passed_over_not_the_end_of_it(tmp_path: Path) -> None:
    lines = [
        '{"event_type": "NoteCaptured", "occurred_at": "09:00"}',  # no version
        '{"schema_version": 1, "occurred_at": "09:10"}',  # no type
        '{"event_type": "NoteCaptured", "schema_version": 1, "occurred_at": "10:00"}',
        '{"event_type": "NoteCaptured", "schema_version": 1, "occurred_at": "10:05"}',
        '{"event_type": "TodoCaptured", "schema_version": 2, "occurred_at": "{torn',
        "{torn",
        '{"event_type": "TodoCaptured", "schema_version": 1, "occurred_at": "10:30"}',
    ]
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "events-2026-12-01.jsonl").write_text("\n".join(lines) + "\n")
    assert log_versions(tmp_path) == {
        "NoteCaptured": {"version": 1, "first_at": "10:00"},
        "TodoCaptured": {"version": 1, "first_at": "10:30"},
    }


def test_what_a_release_cannot_read_says_what_it_can() -> None:
    log: dict[str, EventVersion] = {"NoteCaptured": {"version": 3, "first_at": "11:00"}}
    assert unreadable(V2_NOTES, log) == [Unreadable("NoteCaptured", 3, 2, "11:00")]
