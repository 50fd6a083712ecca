"""A release booting as a hand-over's successor: how it knows, and its low-priority start-up.

During a hand-over (`helionyx.handover`) the new release boots beside the running one: most of a
second of CPU goes to importing the web stack. On a host with few cores that
competes with the process still answering clients, and they see it in their latency, and so
does reading a long event log (100 000 events: most of a second more). Linux keeps the nice
value per thread, and an unprivileged thread may raise its own but never lower it back: so the
imports and the log read run, in steps, in a thread of its own at `NICENESS` while the main
thread, which goes on to serve, waits at the priority it started with. For at most
`YIELD_SECONDS` from the start in all: on a host whose cores are all busy, a thread at nice 10
gets a few percent of one, and a start-up that yielded without end would miss the hand-over's
timeout; the steps left then run at full priority.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

#: In the successor's environment (set by the running process): the channel it reports on.
REPORT_FD = "HELIONYX_HANDOVER_FD"
#: The start-up thread's nice value: it gets what the serving process leaves of the CPU.
NICENESS = 10
#: The longest the start-up yields the CPU before what is left of it runs at full priority.
YIELD_SECONDS = 3.0
#: When this process began (it is the first module a successor imports): the yield's start.
_STARTED = time.monotonic()
#: What a successor imports before it reads its settings, dependencies first: each a step of
#: well under 0.1 s of CPU, the unit the time limit is checked at.
HEAVY_MODULES = (
    "asyncio",
    "pydantic_core",
    "pydantic",
    "pydantic_settings",
    "httpx",
    "fastapi.openapi.models",
    "fastapi.params",
    "fastapi.routing",
    "fastapi",
    "uvicorn",
    "helionyx.config",
    "helionyx.telegram.supervisor",
    "helionyx.api.schemas",
    "helionyx.api",
    "helionyx.cli",
    "helionyx.server",
)

T = TypeVar("T")
log = logging.getLogger("helionyx.startup")


def beside() -> bool:
    """Whether this process was started beside a serving release, to take its socket over."""
    return REPORT_FD in os.environ


def run(work: Callable[[], T]) -> T:
    """`work()`'s result, computed in a thread at `NICENESS` (its exception re-raised here)."""
    results: list[T] = []
    failures: list[BaseException] = []

    def niced() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
        except OSError as exc:  # a unit whose system-call filter refuses it: full priority
            log.warning("start-up at full priority: setpriority refused (%s)", exc.strerror)
        try:
            results.append(work())
        except BaseException as exc:  # handed to the caller's thread as it is
            failures.append(exc)

    thread = threading.Thread(target=niced, name="start-up at low priority")
    thread.start()
    thread.join()
    if failures:
        raise failures[0]
    return results[0]


def budget() -> float:
    """When a successor's start-up stops yielding: `YIELD_SECONDS` after it began (monotonic)."""
    return _STARTED + YIELD_SECONDS


def yielding(steps: Iterator[object], until: float) -> int:
    """Take `steps` at `NICENESS` until `until` (monotonic), the rest at this thread's own
    priority; how many were taken yielding."""
    taken = 0
    end = object()

    def niced() -> None:
        nonlocal taken
        while time.monotonic() < until and next(steps, end) is not end:
            taken += 1

    run(niced)
    for _ in steps:
        pass
    return taken


def preload(modules: tuple[str, ...] = HEAVY_MODULES, seconds: float | None = None) -> int:
    """Import `modules` yielding (for the start-up's `budget`, or `seconds` from now), so that
    the main thread finds them loaded; how many were imported yielding."""
    until = budget() if seconds is None else time.monotonic() + seconds
    return yielding(map(_import, modules), until)


def _import(name: str) -> None:
    # One that fails is imported again, and reported, by the code that needs it.
    with contextlib.suppress(Exception):
        importlib.import_module(name)
