"""Hand-written fakes of the pipeline's own small interfaces."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class FakeClock:
    """A clock whose sleeps only move its own time (it starts at the real time)."""

    now: float = field(default_factory=time.time)
    slept: list[float] = field(default_factory=list)

    def time(self) -> float:
        """The fake's current time."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Record the wait and move time on."""
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class Notes:
    """Collects what a store tells the operator."""

    lines: list[str] = field(default_factory=list)

    def __call__(self, message: str) -> None:
        self.lines.append(message)
