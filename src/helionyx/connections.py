"""Bounds on what clients hold: how many connections, and how long a request may take to arrive.

uvicorn (with h11) waits for a request's head for as long as a client cares to trickle it, and
accepts connections until the process runs out of file descriptors, after which every accept
fails and asyncio logs a traceback each time. Here every connection must complete its request
head within REQUEST_READ_TIMEOUT (else it is answered 408 and closed), a body may not pause for
longer than that (api/limits.py), and at most MAX_CONNECTIONS are open: a new one beyond it
takes the place of the connection that has waited longest for its request head (answered 408),
or is closed when every connection is busy with a request; either is logged once a minute. The
cap always stays below the file-descriptor limit, so an accept never fails for want of one. A
proxy in front is still what absorbs a flood (docs/SECURITY.md).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from helionyx.logs import EveryInterval

log = logging.getLogger("helionyx.connections")

#: Descriptors kept for everything that is not a client connection (the log, SQLite, the
#: adapter's HTTP client, the listening socket).
RESERVED_FDS = 64
TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 28\r\n"
    b"connection: close\r\n\r\nrequest head took too long.\n"
)
_refusals = EveryInterval(log)


def connection_cap(wanted: int) -> int:
    """At most `wanted`, and always below this process's file-descriptor limit.

    The soft limit is raised to the hard one first (systemd's LimitNOFILE sets both; the unit's
    seccomp filter may refuse setrlimit, and then the limit stays as it is).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - RESERVED_FDS))


def bounded_h11(max_connections: int, read_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with these bounds."""

    class Bounded(H11Protocol):
        """One connection, bounded."""

        _deadline: asyncio.TimerHandle | None = None
        #: When this connection began to wait for a request head (loop time), while it waits.
        waiting_since: float | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections and not self._make_room():
                _refusals.log(
                    logging.WARNING,
                    "api: closed a new connection: all %d are serving requests (MAX_CONNECTIONS)",
                    max_connections,
                )
                transport.abort()
                return
            self._watch_head()

        def _make_room(self) -> bool:
            """Close the connection that has waited longest for its request head, if any."""
            idle = [
                c
                for c in self.connections
                if isinstance(c, Bounded) and c is not self and c.waiting_since is not None
            ]
            if not idle:
                return False
            oldest = min(idle, key=lambda c: c.waiting_since or 0.0)
            _refusals.log(
                logging.WARNING,
                "api: %d connections open (MAX_CONNECTIONS): closed the one waiting longest "
                "for its request head to take a new one",
                len(self.connections),
            )
            oldest._too_slow()
            return True

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel()
            super().connection_lost(exc)

        def _watch_head(self) -> None:
            # Waiting for a request head (a new connection, or a keep-alive one whose next
            # request has begun to arrive): it must be complete in time.
            waiting = self.conn.their_state is h11.IDLE and (
                self.cycle is None or self.cycle.response_complete
            )
            if not waiting:
                self._cancel()
            elif self._deadline is None:
                self.waiting_since = self.loop.time()
                self._deadline = self.loop.call_later(read_timeout, self._too_slow)

        def _too_slow(self) -> None:
            self._cancel()
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.write(TIMED_OUT)
                self.transport.close()

        def _cancel(self) -> None:
            self.waiting_since = None
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

    return Bounded


def uvicorn_limits(max_connections: int, read_timeout: float) -> dict[str, Any]:
    """uvicorn.Config options for these bounds."""
    cap = connection_cap(max_connections)
    return {"http": bounded_h11(cap, read_timeout), "timeout_keep_alive": 5}
