"""A steady, bounded HTTP load: N clients alternating /health and an authenticated read.

Every request opens its own connection (no keep-alive), so a refused or reset connection shows
up as a failure instead of being hidden by connection reuse; with `keep_alive`, each client
keeps one connection between requests instead, as API clients and browsers do, and a request
sent on a connection closed under it fails (httpx does not send it again). Bounded in requests
and seconds; it stops by itself. Send it only to loopback or to the project's own test node.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

#: Whether this machine's outgoing connections may reuse a local port still in TIME_WAIT.
TW_REUSE = Path("/proc/sys/net/ipv4/tcp_tw_reuse")


@contextmanager
def ports_reused() -> Iterator[None]:
    """While the load runs, let its connections reuse local ports in TIME_WAIT (root only).

    Every request's connection, once closed, holds its local port for 60 s. At ~2 000 requests
    a second Linux's 28 232 ephemeral ports run out within seconds, and from then on each
    connect() searches for a free one: measured here, the load fell from ~2 300 to ~900
    requests a second and its median latency from 8 to 18-35 ms about 10 s into a run, and
    recovered only after a minute idle. Rows measured late in a run then paid for the load
    generator's own port exhaustion, the steady state measured first did not. Reuse
    (`tcp_tw_reuse=1`, made safe by TCP timestamps) is the usual setting on a load generator;
    the value before is put back.
    """
    try:
        before = TW_REUSE.read_text()
        TW_REUSE.write_text("1\n")
    except OSError as exc:
        print(
            f"note: tcp_tw_reuse not set ({exc.strerror}): rows late in the run also measure "
            "the load generator running out of local ports",
            file=sys.stderr,
        )
        yield
        return
    try:
        yield
    finally:
        TW_REUSE.write_text(before)


@dataclass
class Phase:
    """What the load saw between two marks."""

    name: str
    requests: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    #: When the first and the last failed request of the phase ended (monotonic seconds).
    failing: tuple[float, float] | None = None

    @property
    def outage(self) -> float:
        """Seconds from the first failed request to the last: how long the service was away."""
        return self.failing[1] - self.failing[0] if self.failing else 0.0

    @property
    def failed(self) -> int:
        """How many requests failed (refused, reset, timed out, non-2xx)."""
        return sum(self.failures.values())

    @property
    def worst(self) -> float:
        """The slowest request, in seconds."""
        return max(self.latencies, default=0.0)

    @property
    def p50(self) -> float:
        """The median latency."""
        return statistics.median(self.latencies) if self.latencies else 0.0

    def summary(self) -> str:
        """One line."""
        failed = ", ".join(f"{k} {v}" for k, v in self.failures.most_common()) or "none"
        return (
            f"{self.name}: {self.requests} requests, failed: {failed}, "
            f"median {self.p50 * 1000:.0f} ms, worst {self.worst * 1000:.0f} ms"
        )


class Load:
    """Run the load in background threads; `mark()` starts a new phase."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        clients: int = 20,
        max_seconds: float = 300,
        max_requests: int = 200_000,
        timeout: float = 30,
        keep_alive: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}
        # Each request on a connection of its own unless asked otherwise (see the docstring).
        self.keep_alive = keep_alive
        if not keep_alive:
            self.headers["Connection"] = "close"
        self.clients = clients
        self.deadline = time.monotonic() + max_seconds
        self.budget = max_requests
        self.timeout = timeout
        self.phases = [Phase("warm-up")]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Load:
        for number in range(self.clients):
            thread = threading.Thread(target=self._client, args=(number,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def mark(self, name: str) -> Phase:
        """Start counting a new phase; returns the phase that just ended."""
        with self._lock:
            ended = self.phases[-1]
            self.phases.append(Phase(name))
        return ended

    def stop(self) -> Phase:
        """Stop every client; returns the last phase."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        return self.phases[-1]

    def _client(self, number: int) -> None:
        paths = ["/health", "/api/v1/state"]
        limits = httpx.Limits(max_keepalive_connections=1 if self.keep_alive else 0)
        with httpx.Client(timeout=self.timeout, limits=limits, headers=self.headers) as client:
            turn = number
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                with self._lock:
                    if self.budget <= 0:
                        return
                    self.budget -= 1
                path = paths[turn % 2]
                turn += 1
                started = time.monotonic()
                outcome = self._one(client, path)
                elapsed = time.monotonic() - started
                with self._lock:
                    phase = self.phases[-1]
                    phase.requests += 1
                    phase.latencies.append(elapsed)
                    if outcome:
                        phase.failures[outcome] += 1
                        now = started + elapsed
                        phase.failing = (phase.failing[0] if phase.failing else now, now)

    def _one(self, client: httpx.Client, path: str) -> str | None:
        try:
            response = client.get(self.base_url + path)
        except httpx.ConnectError:
            return "connection refused"
        except (httpx.RemoteProtocolError, httpx.ReadError):
            return "connection reset"
        except httpx.TimeoutException:
            return "timeout"
        if response.status_code >= 500:
            return f"HTTP {response.status_code}"
        if response.status_code != 200:
            return f"HTTP {response.status_code}"
        return None
