"""The agent's CPU priority: below the env's services, except at the instant of a switch.

The agent works at nice `NICENESS` (unpacking, checksums, venv builds, read-model rebuilds and
every program they start yield to the services, which run at 0). But while the release is held
ready beside the running one on every host of an env, the agent's next act is the switch itself,
and on a busy host a process at nice 10 can wait many scheduler periods to be woken by the
operator's word: the hosts would switch that much apart. So from ready until the word is sent
it runs at the services' priority (root may lower its nice value again; elsewhere, as in tests
run without root, nothing changes).

A process's nice value orders it only against the processes of its own session where Linux
groups sessions for the scheduler (autogroup, on unless CPU cgroups take over): the agent's SSH
session would get as much CPU as the service's whole session, nice 10 or not. So the session's
group is set to the same niceness (`/proc/self/autogroup`), when the session is the agent's own
(it leads it, as under sshd), never an operator's shell's or a test runner's.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

NICENESS = 10
#: The scheduling group of this process's session, where the kernel has one.
AUTOGROUP = Path("/proc/self/autogroup")


def calm() -> None:
    """Work below the services (at least `NICENESS`)."""
    with suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), NICENESS))
    _session(NICENESS)


def hurry() -> None:
    """Run at the services' priority until `calm` (the switch is next)."""
    with suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, min(os.getpriority(os.PRIO_PROCESS, 0), 0))
    _session(0)


def _session(nice: int) -> None:
    if os.getsid(0) != os.getpid():
        return
    # Refused without root only below 0, and rate-limited (EAGAIN) without CAP_SYS_ADMIN.
    with suppress(OSError):
        AUTOGROUP.write_text(f"{nice}\n")
