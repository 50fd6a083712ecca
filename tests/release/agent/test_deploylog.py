"""deploy-log.jsonl: the one writer and reader, and the rules read from it."""

from __future__ import annotations

import json
from pathlib import Path

from release.agent import deploylog
from release.agent.protocol import FAILED, FINISH, NOOP, ROLLED_BACK, SUCCEEDED, LogRecord


def finish(sha: str, outcome: str, action: str = "deploy", at: str = "t") -> LogRecord:
    return {"step": FINISH, "action": action, "sha": sha, "outcome": outcome, "ended_at": at}


def test_records_are_appended_never_rewritten(tmp_path: Path) -> None:
    log = tmp_path / "env" / "deploy-log.jsonl"
    deploylog.append(log, [finish("a", SUCCEEDED)])
    first = log.read_bytes()
    deploylog.append(log, [finish("b", SUCCEEDED)])
    assert log.read_bytes().startswith(first)
    assert [r["sha"] for r in deploylog.read_decisive(log)] == ["a", "b"]


def test_nothing_to_append_writes_nothing(tmp_path: Path) -> None:
    log = tmp_path / "deploy-log.jsonl"
    deploylog.append(log, [])
    assert not log.exists()


def test_a_torn_last_line_and_step_records_are_skipped(tmp_path: Path) -> None:
    log = tmp_path / "deploy-log.jsonl"
    deploylog.append(log, [finish("a", SUCCEEDED), {"step": "build", "sha": "a", "outcome": "ok"}])
    with log.open("a") as handle:
        handle.write('{"step": "finish", "sha": "b", "outc')  # killed mid-write
    assert [r["sha"] for r in deploylog.read_decisive(log)] == ["a"]


def test_a_missing_log_reads_as_empty(tmp_path: Path) -> None:
    assert deploylog.read_decisive(tmp_path / "deploy-log.jsonl") == []


def test_only_the_newest_records_travel(tmp_path: Path) -> None:
    log = tmp_path / "deploy-log.jsonl"
    lines = [json.dumps(finish(f"{n:040}", SUCCEEDED)) for n in range(deploylog.MAX_ENTRIES + 5)]
    log.write_text("\n".join(lines) + "\n")
    read = deploylog.read_decisive(log)
    assert len(read) == deploylog.MAX_ENTRIES
    assert read[-1]["sha"] == f"{deploylog.MAX_ENTRIES + 4:040}"


def test_the_latest_outcome_of_a_release_decides_whether_it_failed() -> None:
    log = [
        finish("a", FAILED),
        finish("b", ROLLED_BACK),
        finish("a", SUCCEEDED, action="rollback"),
        finish("c", SUCCEEDED),
        finish("c", FAILED, action="restart"),
        finish("d", FAILED, action="backup"),  # not about the release
    ]
    assert deploylog.failed_shas(log) == {"b", "c"}


def test_last_deployed_first_orders_by_log_position_not_by_name() -> None:
    log = [finish("b", SUCCEEDED), finish("a", SUCCEEDED), finish("b", NOOP)]
    assert deploylog.last_deployed_first(log, ["a", "b", "z"]) == ["b", "a", "z"]


def test_a_no_op_never_counts_as_switching_in() -> None:
    log = [finish("a", SUCCEEDED, at="10:00"), finish("a", NOOP, at="12:00")]
    record = deploylog.last_switched_in(log, "a")
    assert record is not None and record["ended_at"] == "10:00"


def test_a_release_never_put_live_has_no_switch_record() -> None:
    assert deploylog.last_switched_in([finish("a", FAILED)], "a") is None


def test_other_releases_deployed_since_do_not_hide_the_switch_record() -> None:
    log = [finish("a", SUCCEEDED, at="10:00"), finish("b", SUCCEEDED, at="11:00")]
    record = deploylog.last_switched_in(log, "a")
    assert record is not None and record["ended_at"] == "10:00"


def test_a_record_is_one_line_of_sorted_keys_in_a_directory_made_for_it(tmp_path: Path) -> None:
    log = tmp_path / "opt" / "helionyx" / "dev" / "deploy-log.jsonl"
    deploylog.append(log, [{"step": FINISH, "action": "deploy"}, {"sha": "a", "outcome": NOOP}])
    assert log.read_text() == (
        '{"action": "deploy", "step": "finish"}\n{"outcome": "noop", "sha": "a"}\n'
    )


def test_the_decisive_records_are_finishes_and_switches(tmp_path: Path) -> None:
    log = tmp_path / "deploy-log.jsonl"
    lines = [
        {"step": "lock", "sha": "a"},
        {"step": "switch", "sha": "a", "outcome": "ok"},
        {"step": FINISH, "sha": "a", "outcome": SUCCEEDED},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in lines) + '["finish"]\n"switch"\n')
    assert deploylog.read_decisive(log) == lines[1:]


def test_what_went_live_and_what_failed_are_read_from_finish_records_only() -> None:
    live, rolled, broke, noop = (
        finish("a", SUCCEEDED),
        finish("a", ROLLED_BACK),
        finish("a", FAILED, action="restart"),
        finish("a", NOOP),
    )
    assert [deploylog.went_live(r) for r in (live, rolled, broke, noop)] == [1, 0, 0, 0]
    assert [deploylog.failed(r) for r in (live, rolled, broke, noop)] == [0, 1, 1, 0]
    assert deploylog.went_live(finish("a", SUCCEEDED, action="rollback"))
    assert not deploylog.went_live(finish("a", SUCCEEDED, action="backup")), "moved nothing"
    step: LogRecord = {**finish("a", FAILED), "step": "build"}
    assert not deploylog.failed(step), "a step's outcome is not the operation's"
