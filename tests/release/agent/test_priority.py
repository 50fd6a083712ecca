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

GROUP = "open('/proc/self/autogroup').read().split()[-1]"
SHOW = (
    "import os; from release.agent import priority; priority.{call}(); "
    f"print(os.getpriority(os.PRIO_PROCESS, 0), {GROUP})"
)
# A session of the test's own, so that what it reads does not depend on how the suite was
# started (a runner that never left the kernel's default group reads an empty file).
JOINED = (
    "import subprocess, sys; "
    f"before = {GROUP}; "
    "shown = subprocess.run([sys.executable, '-c', sys.argv[1]], capture_output=True, "
    "text=True, check=True).stdout.split(); "
    f"print(*shown, before, {GROUP})"
)


def _python(code: str, *args: str) -> list[int]:
    """What a Python process printed, started in a session of its own."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        start_new_session=True,
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    return [int(word) for word in done.stdout.split()]


def test_an_agent_leading_its_session_yields_with_the_whole_session() -> None:
    # Under sshd the agent leads its session: its group weighs against the service's.
    assert _python(SHOW.format(call="calm")) == [NICENESS, NICENESS]


def test_a_session_the_agent_only_joined_keeps_its_own_weight() -> None:
    nice, group, leader_before, leader_after = _python(JOINED, SHOW.format(call="calm"))
    assert (nice, group) == (NICENESS, leader_before)
    assert leader_after == leader_before == 0
