"""The agent's CPU priority, in processes of their own (it changes the caller's scheduling)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from release.agent.priority import AUTOGROUP, NICENESS

pytestmark = pytest.mark.skipif(
    not AUTOGROUP.exists(), reason="this kernel groups no sessions (no autogroup)"
)

SHOW = (
    "import os; from release.agent import priority; priority.{call}(); "
    "print(os.getpriority(os.PRIO_PROCESS, 0), open('/proc/self/autogroup').read().split()[-1])"
)


def _run(call: str, *, own_session: bool) -> tuple[int, int]:
    """(nice, session group's nice) of a process that called `priority.<call>()`."""
    done = subprocess.run(
        [sys.executable, "-c", SHOW.format(call=call)],
        start_new_session=own_session,
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    nice, group = done.stdout.split()
    return int(nice), int(group)


def test_an_agent_leading_its_session_yields_with_the_whole_session() -> None:
    # Under sshd the agent leads its session: its group weighs against the service's.
    assert _run("calm", own_session=True) == (NICENESS, NICENESS)


def test_a_session_the_agent_only_joined_keeps_its_own_weight() -> None:
    before = int(AUTOGROUP.read_text().split()[-1])
    assert _run("calm", own_session=False) == (NICENESS, before)
    assert int(AUTOGROUP.read_text().split()[-1]) == before
