"""Connections changing hands at a hand-over: the channel's ends (the whole exchange between two
real processes is in test_handover.py)."""

from __future__ import annotations

import os
import socket

from helionyx import adoption


def test_a_pipe_from_a_release_before_this_exchange_passes_no_connections() -> None:
    read_end, write_end = os.pipe()
    try:
        assert adoption.receive(write_end) == []
    finally:
        os.close(read_end)
        os.close(write_end)


def test_nothing_passed_on_is_nothing_received() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert adoption.receive(theirs.fileno()) == []
        ours.sendall(b"still open")  # the successor's end stays usable for its lines
        assert theirs.recv(64) == b"still open"
