"""Connections that change hands at a hand-over, with the listening socket.

At the switch the running release stops accepting and answers what it has in flight before it
lets go of the log, and until it has, nobody accepts: every new client waits. A connection with
no request in flight would make them wait for its own client: one opened an instant before,
whose request is still on the way (a busy or distant client; a browser's preconnect sends
nothing for seconds), held the switch for up to `handover.FIRST_REQUEST_SECONDS`; one kept alive
between requests was closed, and a request its client sent meanwhile failed. Such a connection
goes to the successor instead, over the Unix socket pair the two share (SCM_RIGHTS), with
whatever its client sends next still unread in the kernel; the successor serves it once it
has taken over, as if it had accepted it. A release from before this exchange reads nothing
from its predecessor: connections pass only to a successor that said `ADOPTS`.
"""

from __future__ import annotations

import array
import asyncio
import logging
import os
import socket
from typing import TypeGuard

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("helionyx.handover")

#: What a successor says before `ready` when it takes connections over (a predecessor from
#: before this exchange takes it for one more reason to wait, and ignores it).
ADOPTS = "adopts connections"
#: The most descriptors Linux passes in one message (SCM_MAX_FD).
PER_MESSAGE = 253


def idle(connection: asyncio.Protocol) -> TypeGuard[H11Protocol]:
    """Whether `connection` is between requests: none in flight, nothing of the next one read
    yet and nothing left to send (so the next process can take it from here)."""
    if not isinstance(connection, H11Protocol) or connection.transport is None:
        return False
    transport = connection.transport
    if transport.is_closing() or transport.get_write_buffer_size():
        return False
    if transport.get_extra_info("sslcontext") is not None:
        return False  # the TLS session is this process's: it cannot change hands
    cycle = connection.cycle
    return (
        (cycle is None or cycle.response_complete)
        and connection.conn.their_state is h11.IDLE
        and connection.conn.our_state is h11.IDLE
        and connection.conn.trailing_data == (b"", False)
    )


def pass_on(channel: socket.socket, connections: list[H11Protocol]) -> int:
    """Send idle `connections` to the successor; how many went (the first so many, which are
    no longer this process's; the rest are as they were)."""
    for connection in connections:
        connection.transport.pause_reading()  # what arrives now stays in the kernel for it
    sent = 0
    while sent < len(connections):
        chunk = connections[sent : sent + PER_MESSAGE]
        fds = [c.transport.get_extra_info("socket").fileno() for c in chunk]
        try:
            socket.send_fds(channel, [b"c" * len(fds)], fds)
        except OSError as exc:
            log.warning("hand-over: could not pass connections on (%s)", exc.strerror or exc)
            break
        sent += len(chunk)
    for connection in connections[:sent]:
        # Only our descriptor closes: the successor's keeps the connection open, unread.
        connection.transport.abort()
    for connection in connections[sent:]:
        connection.transport.resume_reading()
    return sent


def receive(channel_fd: int) -> list[socket.socket]:
    """In the successor, once it holds the log: the connections its predecessor passed on
    (it sends them before it lets go of the log, so they are all there by now)."""
    try:
        channel = socket.socket(fileno=os.dup(channel_fd))
    except OSError:
        return []  # a pipe: the release before passes no connections
    received: list[socket.socket] = []
    with channel:  # a duplicate: MSG_DONTWAIT, not O_NONBLOCK, which the reporter would share
        while True:
            try:
                data, fds, flags = _receive_some(channel)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.warning("hand-over: could not take connections over (%s)", exc.strerror)
                break
            for fd in fds:
                try:
                    received.append(socket.socket(fileno=fd))
                except OSError:
                    os.close(fd)
            if flags & socket.MSG_CTRUNC:
                log.warning("hand-over: some connections passed on were lost in transit")
            if not data:
                break
    return received


def _receive_some(channel: socket.socket) -> tuple[bytes, list[int], int]:
    """One message and the descriptors it carries, without waiting (`socket.recv_fds` before
    Python 3.12 drops its flags, and would wait)."""
    fds = array.array("i")
    data, ancillary, flags, _ = channel.recvmsg(
        4096, socket.CMSG_SPACE(PER_MESSAGE * fds.itemsize), socket.MSG_DONTWAIT
    )
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return data, list(fds), flags
