"""The agent's CPU priority: below the env's services, except at the instant of a switch.

The agent works at nice `NICENESS` (unpacking, checksums, venv builds, read-model rebuilds and
every program they start yield to the services, which run at 0). But while the release is held
ready beside the running one on every host of an env, the agent's next act is the switch itself,
and on a busy host a process at nice 10 can wait many scheduler periods to be woken by the
operator's word: the hosts would switch that much apart. So from ready until the word is sent
it runs at the services' priority (root may lower its nice value again; elsewhere, as in tests
run without root, nothing changes).
"""

from __future__ import annotations

import os
from contextlib import suppress

NICENESS = 10


def calm() -> None:
    """Work below the services (at least `NICENESS`)."""
    with suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), NICENESS))


def hurry() -> None:
    """Run at the services' priority until `calm` (the switch is next)."""
    with suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, min(os.getpriority(os.PRIO_PROCESS, 0), 0))
