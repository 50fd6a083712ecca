"""The operator's side of the deploy lock without a node: who it names, and when a holder is
provably gone (release.hosts.lock)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from typing import cast

import pytest

from release.agent.protocol import HolderRecord, LockHolder
from release.hosts.lock import describe, describe_now, holder_for, holder_gone


def test_the_holder_record_names_who_where_what_and_since_when(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEPLOY_OPERATOR", "ops@laptop")
    record = holder_for("deploy 0.2.0")
    assert {k: v for k, v in record.items() if k not in ("token", "started_at")} == {
        "holder": "ops@laptop",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": "deploy 0.2.0",
    }
    assert re.fullmatch(r"[0-9a-f]{32}", record["token"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["started_at"])
    assert holder_for("deploy 0.2.0")["token"] != record["token"], "each operation its own"


def test_a_holder_is_named_in_one_line() -> None:
    holder: LockHolder = {
        "holder": "ops@laptop",
        "host": "laptop",
        "pid": 42,
        "command": "deploy 0.2.0",
        "started_at": "2026-12-01T10:00:00Z",
        "token": "t",
    }
    line = "ops@laptop (pid 42 on laptop, `deploy 0.2.0` since 2026-12-01T10:00:00Z)"
    assert describe(holder) == line
    assert describe_now(holder) == line, "on another machine: never called stale"
    assert describe({"holder": "unknown", "incomplete": True}) == (
        "an operation that was killed while taking the lock"
    )


def finished_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def held(host: str, pid: int) -> HolderRecord:
    return {
        "holder": "ops",
        "host": host,
        "pid": pid,
        "command": "deploy",
        "started_at": "then",
        "token": "t",
    }


def test_only_a_holder_that_provably_ended_here_is_gone() -> None:
    here = socket.gethostname()
    # The holder dies of SIGHUP as a process normally does (whatever this one inherited).
    script = "import signal, time; signal.signal(signal.SIGHUP, signal.SIG_DFL); print(1, "
    script += "flush=True); time.sleep(60)"
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE) as running:
        try:
            assert running.stdout is not None and running.stdout.readline() == b"1\n"
            assert holder_gone(held(here, running.pid)) is False
            with pytest.raises(subprocess.TimeoutExpired):  # asking did not touch the holder
                running.wait(timeout=1)
        finally:
            running.kill()
    dead = finished_pid()
    assert holder_gone(held(here, dead)) is True
    assert describe_now(held(here, dead)) == (
        f"ops (pid {dead} on {here}, `deploy` since then); "
        "stale: that process is gone, the next operation removes the lock"
    )
    # What cannot be told from here is never called gone.
    assert holder_gone(held("elsewhere", dead)) is None
    assert holder_gone(cast(LockHolder, {**held(here, dead), "pid": str(dead)})) is None
    assert holder_gone({"holder": "unknown", "incomplete": True}) is None
