"""The connection cap's arithmetic and the once-a-minute log line, without a server."""

from __future__ import annotations

import logging
import resource
import subprocess
import sys

import pytest

from helionyx.logs import EveryInterval, OncePerInterval


def test_the_cap_stays_below_the_descriptor_limit_it_cannot_raise() -> None:
    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512)); "
        "from helionyx.connections import connection_cap; print(connection_cap(4096))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "448"


def test_the_cap_raises_the_soft_limit_to_the_hard_one_first() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    code = (
        f"import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (256, {hard})); "
        "from helionyx.connections import connection_cap; print(connection_cap(100)); "
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["100", str(hard)]


def test_failed_accepts_are_logged_once_a_minute_without_their_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    noisy = logging.getLogger("asyncio.test-accepts")
    gate = OncePerInterval("socket.accept() out of system resource", interval=60)
    noisy.addFilter(gate)
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio.test-accepts"):
            failure = OSError(24, "Too many open files")
            for _ in range(1000):
                noisy.error(
                    "socket.accept() out of system resource",
                    exc_info=(OSError, failure, None),
                )
            noisy.error("something else")
    finally:
        noisy.removeFilter(gate)
    assert [r.getMessage() for r in caplog.records] == [
        "socket.accept() out of system resource",
        "something else",
    ]
    assert caplog.records[0].exc_info is None


def test_every_interval_counts_what_it_left_out(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    gate = EveryInterval(logging.getLogger("helionyx.test"), 60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="helionyx.test"):
        for second in range(121):
            now[0] = float(second)
            gate.log(logging.WARNING, "refused a write: %s", "disk full")
    assert [r.getMessage() for r in caplog.records] == [
        "refused a write: disk full",
        "refused a write: disk full (59 more since the last such line)",
        "refused a write: disk full (59 more since the last such line)",
    ]
