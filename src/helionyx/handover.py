"""Handing the listening socket from the running release to the next, without a restart.

The running process (the unit's main PID) gets SIGHUP from the host agent, which first wrote
`handover.json` (which release, how long it may take) beside `current`. It starts the release
`current` points at as its successor, passing it the listening socket systemd gave it (fd 3)
and one end of a socket pair. The successor does all its start-up work without accepting:
settings, the event log read, its own read model, the readiness checks (`api.app.not_ready`),
then says `ready`.
Only then does the running process stop accepting, finish its in-flight requests and let go
of the log (`domain.store.writer`); the successor, waiting on that lock, takes in the last
events, catches the read model up, becomes the unit's main PID (sd_notify `MAINPID=`), says
`taken` and starts accepting, and the old process exits. Connections arriving meanwhile wait
in the socket's backlog for milliseconds; connections with no request in flight at the switch
go to the successor with it (`helionyx.adoption`). A successor that never gets ready, exits or
hangs is killed before it ever accepted; the running process never stopped serving, and /health
says why (`handover`). Sequence: docs/ARCHITECTURE.md.

A request with `hold` (an env of several hosts) stops at `ready`: the successor waits beside
the running process until the agent, once every host is ready, writes `switch` (or `abort`)
for the attempt and sends SIGHUP again; with no word within `hold` seconds it is killed and
the running process serves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from uvicorn.protocols.http.h11_impl import H11Protocol

from helionyx import adoption, successor

log = logging.getLogger("helionyx.handover")

#: Bumped if the exchange between the two processes ever changes; /health reports it.
#: 2: a request may hold the ready successor until it is told to switch.
PROTOCOL = 2
#: Set by the unit: `<base>/current`, the release a successor is started from.
CURRENT = "HELIONYX_CURRENT"
#: Written by the host agent beside `current` before its SIGHUP.
REQUEST = "handover.json"
#: After it stops accepting, how long a just-accepted connection gets to deliver its request.
FIRST_REQUEST_SECONDS = 1.0
#: How long the successor may take to become the main PID once the log is let go.
TAKE_SECONDS = 10.0
LISTEN_FD = 3


@dataclass(frozen=True)
class Attempt:
    """A hand-over as /health reports it."""

    commit: str | None
    state: str  # starting, ready, handed-over, failed
    pid: int | None = None
    reason: str | None = None
    #: The agent's name for this attempt (from the request), so it knows the answer is its own.
    attempt: str | None = None


def available() -> bool:
    """Whether this process can hand over: systemd told it where `current` is and lets any
    process of the unit name the main PID (NotifyAccess=all gives it NOTIFY_SOCKET)."""
    return bool(os.environ.get(CURRENT)) and bool(os.environ.get("NOTIFY_SOCKET"))


def notify(message: str) -> None:
    """Tell systemd `message` (sd_notify); nothing when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


class Reporter:
    """The successor's end of the channel (None-safe: a process started normally has none)."""

    def __init__(self) -> None:
        fd = os.environ.pop(successor.REPORT_FD, None)
        self._fd = int(fd) if fd else None
        self._last: str | None = None

    @property
    def active(self) -> bool:
        return self._fd is not None

    def say(self, line: str) -> None:
        """One line to the running process (repeated lines are sent once)."""
        if self._fd is None or line == self._last:
            return
        self._last = line
        with contextlib.suppress(OSError):
            os.write(self._fd, (line.replace("\n", " ") + "\n").encode())

    def connections(self) -> list[socket.socket]:
        """The connections the running process passed on (`helionyx.adoption`)."""
        return adoption.receive(self._fd) if self._fd is not None else []

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def become_ready(reporter: Reporter, not_ready: Callable[[], str | None]) -> None:
    """In the successor: look until ready, telling the running process each new reason (it
    decides how long to wait and kills a successor that never gets there)."""
    reporter.say(adoption.ADOPTS)
    while (reason := not_ready()) is not None:
        reporter.say(f"waiting {reason}")
        time.sleep(0.05)
    reporter.say("ready")


class Handover:
    """The running process's side: start the successor, hand over when it is ready."""

    def __init__(
        self,
        stop_accepting: Callable[[PassOn | None], Awaitable[None]],
        let_go: Callable[[], None],
        exit_now: Callable[[], None],
        spawn: Callable[[Path, int], int] | None = None,
    ) -> None:
        self._stop_accepting = stop_accepting
        self._let_go = let_go
        self._exit = exit_now
        #: Starts the successor from a release, reporting on a socket; its PID (`_spawn`).
        self._spawn = spawn or _spawn
        self.attempt: Attempt | None = None
        self._task: asyncio.Task[None] | None = None
        #: Set while a ready successor is held: the agent's word, `switch` or `abort`.
        self._held: asyncio.Future[str] | None = None
        #: This process's end of the channel to the successor, and whether it adopts.
        self._channel: socket.socket | None = None
        self._adopts = False
        self._passed = 0

    def report(self) -> dict[str, object]:
        """What /health says: the protocol this process speaks (none outside systemd) and the
        last attempt; empty when there is nothing to say."""
        # The pid tells the agent which process answered: the new one, once it took over.
        body: dict[str, object] = {"protocol": PROTOCOL, "pid": os.getpid()} if available() else {}
        if self.attempt is not None:
            body["last"] = {k: v for k, v in asdict(self.attempt).items() if v is not None}
        return body

    def begin(self) -> None:
        """SIGHUP: start a hand-over unless one is under way (a held one: the agent's word)."""
        if self._task is not None and not self._task.done():
            if self._held is not None and not self._held.done():
                self._told()
                return
            log.warning("hand-over: one is already under way; SIGHUP ignored")
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            await self._hand_over()
        except Exception as exc:  # every failure is reported, and this process serves on
            self._fail(f"{type(exc).__name__}: {exc}")

    def _fail(self, reason: str) -> None:
        attempt = self.attempt or Attempt(None, "failed")
        self.attempt = replace(attempt, state="failed", reason=reason)
        log.error("hand-over to %s failed: %s; serving on", attempt.commit, reason)

    def _told(self) -> None:
        """A SIGHUP while a ready successor is held: `switch` or `abort`, for this attempt."""
        assert self._held is not None and self.attempt is not None
        try:
            request = json.loads((Path(os.environ[CURRENT]).parent / REQUEST).read_text())
            word = str(request["word"]) if request.get("attempt") == self.attempt.attempt else ""
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            word = ""
        if word in ("switch", "abort"):
            self._held.set_result(word)
        else:
            log.warning("hand-over: SIGHUP without a switch or abort for this attempt; ignored")

    async def _hold(self, seconds: float) -> str | None:
        """The agent's word for the held successor (None: none within `seconds`)."""
        self._held = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(asyncio.shield(self._held), timeout=seconds)
        except TimeoutError:
            return None
        finally:
            self._held = None

    async def _switch_when_told(self, wanted: str, child: int, hold: float) -> bool:
        """Hold the ready successor until the agent says switch; else it goes (False)."""
        log.info(
            "hand-over: %s is ready beside this process; held until told to switch "
            "(at most %.0f s)",
            wanted[:12],
            hold,
        )
        word = await self._hold(hold)
        if word == "switch":
            return True
        _kill(child)
        why = "told to give up" if word else f"not told to switch within {hold:.0f} s"
        self._fail(f"ready, but {why}; it answered no request")
        return False

    async def _hand_over(self) -> None:
        link = Path(os.environ[CURRENT])
        try:
            request = json.loads((link.parent / REQUEST).read_text())
            timeout = float(request["timeout"])
            hold = float(request.get("hold", 0))
            wanted = str(request["sha"])
            name = str(request.get("attempt", ""))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            self.attempt = Attempt(None, "failed")
            self._fail(f"no readable {REQUEST} beside {link}: {exc}")
            return
        release = link.resolve()
        self.attempt = Attempt(wanted, "starting", attempt=name or None)
        if release.name != wanted:
            self._fail(f"{link} points at {release.name}, not at {wanted}")
            return
        deadline = time.monotonic() + timeout
        ours, theirs = socket.socketpair()
        try:
            self._channel, self._adopts, self._passed = ours, False, 0
            await self._with_successor(
                release, theirs, wanted, deadline=deadline, timeout=timeout, hold=hold
            )
        finally:
            self._channel = None
            theirs.close()
            ours.close()

    async def _with_successor(
        self,
        release: Path,
        theirs: socket.socket,
        wanted: str,
        *,
        deadline: float,
        timeout: float,
        hold: float,
    ) -> None:
        assert self.attempt is not None
        # In a thread: starting a process waits for a fork and a shell, tens of milliseconds
        # on a busy host, and this loop is serving clients meanwhile.
        child = await asyncio.to_thread(self._spawn, release, theirs.fileno())
        theirs.close()
        self.attempt = replace(self.attempt, pid=child)
        log.info("hand-over: started %s as pid %d beside this process", wanted[:12], child)
        assert self._channel is not None
        lines = await _lines(os.dup(self._channel.fileno()))
        refused = await _until_ready(lines, deadline, child, timeout, self._heard)
        if refused is not None:
            self._fail(f"{refused}; it answered no request")
            return
        self.attempt = replace(self.attempt, state="ready")
        if hold > 0 and not await self._switch_when_told(wanted, child, hold):
            return
        log.info("hand-over: switching to pid %d: not accepting", child)
        stopped = time.monotonic()
        await self._stop_accepting(self._pass_on if self._adopts else None)
        self._let_go()
        log.info(
            "hand-over: stopped accepting; %d connection(s) passed on between requests; "
            "in-flight requests answered and the log let go in %.0f ms",
            self._passed,
            (time.monotonic() - stopped) * 1000,
        )
        try:
            taken = await _next(lines, time.monotonic() + TAKE_SECONDS)
        except TimeoutError:
            taken = None
        if taken != "taken":
            # The log is let go and nobody took the socket: exit, so systemd starts `current`.
            log.error("hand-over: the successor did not take over (%s); exiting", taken)
            self._exit()
            return
        self.attempt = replace(self.attempt, state="handed-over")
        log.info("hand-over: pid %d serves now; this process exits", child)
        # What is left (shutting down, the interpreter's exit) must not slow the one serving.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, successor.NICENESS)
        self._exit()

    def _heard(self, line: str) -> None:
        """A word from the successor that is neither a reason to wait nor `ready`."""
        self._adopts = self._adopts or line == adoption.ADOPTS

    def _pass_on(self, connections: list[H11Protocol]) -> int:
        """Idle connections to the successor (which adopts them); how many went."""
        if not connections or self._channel is None:
            return 0
        passed = adoption.pass_on(self._channel, connections)
        self._passed += passed
        return passed


#: The running process's way of passing idle connections to the successor (how many went).
PassOn = Callable[[list[H11Protocol]], int]


async def _until_ready(
    lines: asyncio.StreamReader,
    deadline: float,
    child: int,
    timeout: float,
    heard: Callable[[str], None],
) -> str | None:
    """None once the successor says `ready`; else why it never will (it is gone then)."""
    last = "no word from it yet"
    while True:
        try:
            line = await _next(lines, deadline)
        except TimeoutError:
            _kill(child)
            return f"not ready within {timeout:.0f} s: {last}"
        if line is None:
            _kill(child)  # its end of the channel closed: it is gone, or about to be
            return f"exited before it was ready ({last}; its journal lines say why)"
        if line == "ready":
            return None
        if line == adoption.ADOPTS:
            heard(line)
            continue
        last = line.removeprefix("waiting ")


def _spawn(release: Path, report_fd: int) -> int:
    """Start the successor: the unit's command from `release`, on our socket; its PID.

    Started through a shell that exits at once, so that it is systemd's child, not ours: the
    main PID systemd is told of must be its own child, or systemd can neither see it exit
    (no restart on failure) nor wait for it to drain when stopping it.
    """
    environ = {**os.environ, "LISTEN_FDS": "1", successor.REPORT_FD: str(report_fd)}
    environ.pop("LISTEN_FDNAMES", None)
    python = release / "venv" / "bin" / "python"
    # LISTEN_PID must name the successor itself, known only once it runs: sh sets it, then
    # execs. Its stdout goes where ours goes (the journal), so only `echo $!` reaches the pipe.
    script = '/bin/sh -c \'LISTEN_PID=$$ exec "$0" "$@"\' "$0" "$@" >&2 & echo $!'
    started = subprocess.run(
        ["/bin/sh", "-c", script, str(python), "-m", "helionyx", *sys.argv[1:]],
        env=environ,
        pass_fds=(LISTEN_FD, report_fd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        check=True,
    )
    return int(started.stdout.decode().strip())


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


async def _lines(fd: int) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    protocol = asyncio.StreamReaderProtocol(reader)
    await asyncio.get_running_loop().connect_read_pipe(lambda: protocol, os.fdopen(fd, "rb"))
    return reader


async def _next(lines: asyncio.StreamReader, deadline: float) -> str | None:
    """The next line (None at the end), or TimeoutError at `deadline`."""
    remaining = max(0.0, deadline - time.monotonic())
    line = await asyncio.wait_for(lines.readline(), timeout=remaining)
    return line.decode(errors="replace").strip() if line else None
