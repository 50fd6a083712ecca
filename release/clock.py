"""Time as an interface, so waits can be tested without waiting."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time and sleeping."""

    def time(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""
        time.sleep(seconds)


def utc_clock_time(epoch: float) -> str:
    """`HH:MM:SS UTC` of an epoch time, for telling an operator until when something waits."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")
