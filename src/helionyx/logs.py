"""Logging set-up with secret redaction."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactSecrets(logging.Filter):
    """Replace every known secret value in a record's final message with `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message once, redact it, and freeze the result into the record."""
        if not self._secrets:
            return True
        message = record.getMessage()
        for secret in self._secrets:
            message = message.replace(secret, "***")
        record.msg, record.args = message, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            for secret in self._secrets:
                text = text.replace(secret, "***")
            record.exc_text, record.exc_info = text, None
        return True


class EveryInterval:
    """At most one line per interval for something that can happen thousands of times a
    second (refused writes, a refused accept); the next line says how many were not logged."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self.interval = interval
        self._clock = clock
        self._last: float | None = None
        self._quiet = 0
        self._lock = threading.Lock()

    def due(self) -> int | None:
        """None while quiet (this one counted), else how many were left out since the last."""
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < self.interval:
                self._quiet += 1
                return None
            quiet, self._quiet, self._last = self._quiet, 0, now
            return quiet

    def log(self, level: int, message: str, *args: object) -> None:
        """Log `message % args` if due, with the count of those left out."""
        quiet = self.due()
        if quiet is None:
            return
        text = message % args if args else message
        if quiet:
            text += f" ({quiet} more since the last such line)"
        self._logger.log(level, "%s", text)


class OncePerInterval(logging.Filter):
    """Lets through one record per interval of those whose message starts with `prefix`."""

    def __init__(self, prefix: str, interval: float = 60.0) -> None:
        super().__init__()
        self._prefix = prefix
        self._gate = EveryInterval(logging.getLogger(__name__), interval)

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop repeats within the interval, and their tracebacks with them."""
        if not str(record.msg).startswith(self._prefix):
            return True
        quiet = self._gate.due()
        if quiet is None:
            return False
        if quiet:
            record.msg = f"{record.msg} ({quiet} more since the last such line)"
        record.exc_info, record.exc_text = None, None
        return True


def configure(level: str, secrets: Iterable[str] = ()) -> None:
    """Send logs to stderr (the journal under systemd), redacting secrets."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Out of descriptors, asyncio logs a traceback for every failed accept (421,024 in 30 s
    # were seen): one a minute, with the count, says as much.
    noisy = logging.getLogger("asyncio")
    for old_filter in [f for f in noisy.filters if isinstance(f, OncePerInterval)]:
        noisy.removeFilter(old_filter)
    noisy.addFilter(OncePerInterval("socket.accept() out of system resource"))
    # httpx logs every request URL at INFO; Telegram's URLs carry the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
