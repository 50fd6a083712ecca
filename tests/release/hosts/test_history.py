"""Reading the deploy log back: who switched what in when, and the lock as status shows it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

from release.agent.protocol import FINISH, NOOP, SUCCEEDED, SWITCH, HolderRecord, LogRecord
from release.hosts.history import last_success_for
from release.hosts.lock import describe_now

OLD, NEW = "a" * 40, "b" * 40


def event(step: str, sha: str, at: str, **extra: Any) -> LogRecord:
    record: LogRecord = {
        "step": step,
        "sha": sha,
        "action": "deploy",
        "operator": f"op-{at}",
        "source": "dir:dist/releases",
        "started_at": at,
        "ended_at": at,
    }
    record.update(extra)  # type: ignore[typeddict-item]
    return record


def test_a_no_op_redeploy_does_not_move_the_deployed_date() -> None:
    log = [
        event(FINISH, NEW, "2026-12-01T10:00:00Z", outcome=SUCCEEDED),
        event(FINISH, NEW, "2026-12-01T12:00:00Z", outcome=NOOP),
    ]
    found = last_success_for(log, NEW)
    assert found is not None and found.ended_at == "2026-12-01T10:00:00Z"


def test_a_switch_whose_operation_was_killed_is_when_the_release_came_in() -> None:
    log = [
        event(FINISH, NEW, "2026-11-30T09:00:00Z", outcome=SUCCEEDED),
        event(FINISH, OLD, "2026-11-30T10:00:00Z", outcome=SUCCEEDED, action="rollback"),
        event(SWITCH, NEW, "2026-12-01T08:00:00Z", outcome="ok"),  # then the operator died
    ]
    found = last_success_for(log, NEW)
    assert found is not None and found.ended_at == "2026-12-01T08:00:00Z"
    assert found.operator == "op-2026-12-01T08:00:00Z"


def test_a_failed_or_rolled_back_deploy_never_counts() -> None:
    log = [
        event(FINISH, NEW, "2026-12-01T10:00:00Z", outcome="rolled_back"),
        event(SWITCH, NEW, "2026-12-01T09:59:00Z", outcome="failed"),
    ]
    assert last_success_for(log, NEW) is None


def holder(pid: int) -> HolderRecord:
    return {
        "holder": "ops@here",
        "host": socket.gethostname(),
        "pid": pid,
        "command": "deploy 0.2.0",
        "started_at": "2026-12-01T10:00:00Z",
        "token": "t",
    }


def test_a_lock_whose_holder_died_is_marked_stale() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = int(done.stdout)
    assert "stale: that process is gone" in describe_now(holder(dead))
    assert "stale" not in describe_now(holder(os.getpid()))
    elsewhere: HolderRecord = {**holder(dead), "host": "another-machine"}
    assert "stale" not in describe_now(elsewhere), "a holder elsewhere cannot be judged"
