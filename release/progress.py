"""Progress for transfers: shown on stderr only once a transfer has taken over a second."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from release.clock import Clock, SystemClock

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


class Progressable(Protocol):
    """What stores report transfers to."""

    def start(self, label: str, total: int) -> None:
        """A transfer of `total` bytes begins."""

    def advance(self, amount: int) -> None:
        """`amount` more bytes moved."""

    def finish(self) -> None:
        """The transfer ended."""


class NoProgress:
    """Reports nothing (tests, JSON output)."""

    def start(self, label: str, total: int) -> None:
        """Ignore."""

    def advance(self, amount: int) -> None:
        """Ignore."""

    def finish(self) -> None:
        """Ignore."""


class TransferProgress:
    """A rich progress bar that appears only for transfers lasting over `delay` seconds."""

    def __init__(
        self, delay: float = 1.0, console: Console | None = None, clock: Clock | None = None
    ) -> None:
        self.delay = delay
        self._clock = clock or SystemClock()
        self._console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._label = ""
        self._total = 0
        self._done = 0
        self._started = 0.0

    def start(self, label: str, total: int) -> None:
        """Remember the transfer; nothing is drawn yet."""
        self._label, self._total, self._done = label, total, 0
        self._started = self._clock.time()

    def advance(self, amount: int) -> None:
        """Count bytes, drawing the bar once the delay has passed."""
        self._done += amount
        if self._progress is None and self._clock.time() - self._started > self.delay:
            # rich is imported only when a bar is really drawn: it costs start-up time.
            from rich.console import Console  # noqa: PLC0415
            from rich.progress import (  # noqa: PLC0415
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self._console or Console(file=sys.stderr),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self._label, total=self._total)
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=self._done)

    def finish(self) -> None:
        """Remove the bar if one was drawn."""
        if self._progress is not None:
            self._progress.stop()
        self._progress, self._task = None, None

    def __enter__(self) -> TransferProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish()
