"""A successor's start-up runs at a low priority while the thread that will serve keeps its own."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from helionyx import successor


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_work_runs_at_the_low_priority_and_the_caller_keeps_its_own() -> None:
    before = _niceness()
    seen = successor.run(_niceness)
    assert seen >= successor.NICENESS
    assert _niceness() == before, "the thread that goes on to serve is not slowed"


def test_the_work_s_result_and_its_exception_reach_the_caller() -> None:
    assert successor.run(lambda: "built") == "built"

    def broken() -> None:
        raise ValueError("no such release")

    with pytest.raises(ValueError, match="no such release"):
        successor.run(broken)


def test_the_imports_yield_for_a_bounded_time_and_the_caller_imports_what_is_left() -> None:
    # On a host whose cores are all busy a thread at nice 10 gets a few percent of one: the
    # start-up must not yield past its limit, or the hand-over would time out.
    assert successor.preload(("colorsys",), seconds=60) == 1
    assert successor.preload(("wave", "netrc"), seconds=0) == 0
    assert {"colorsys", "wave", "netrc"} <= set(sys.modules)


def test_steps_yield_until_the_deadline_and_the_rest_run_at_the_caller_s_priority() -> None:
    # The log read of a successor: step by step, so that the yield can end between two steps.
    seen: list[int] = []

    def steps(n: int) -> Iterator[None]:
        for _ in range(n):
            seen.append(_niceness())
            yield None

    before = _niceness()
    assert successor.yielding(steps(3), time.monotonic() + 60) == 3
    assert seen == [max(before, successor.NICENESS)] * 3
    seen.clear()
    assert successor.yielding(steps(3), time.monotonic() - 1) == 0
    assert seen == [before] * 3


def test_a_preloaded_module_that_fails_to_import_is_left_to_the_code_that_needs_it() -> None:
    successor.preload(("json", "helionyx.no_such_module"))
    with pytest.raises(ModuleNotFoundError):
        __import__("helionyx.no_such_module")


def test_only_a_process_started_with_the_report_pipe_is_a_successor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(successor.REPORT_FD, raising=False)
    assert not successor.beside()
    monkeypatch.setenv(successor.REPORT_FD, "5")
    assert successor.beside()
