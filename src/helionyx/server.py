"""Running the API under uvicorn, on its own port or on a socket systemd hands over."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable

import uvicorn

from helionyx import __commit__, __version__, adoption, handover, successor
from helionyx.api import create_app
from helionyx.api.app import not_ready
from helionyx.config import Settings
from helionyx.connections import uvicorn_limits
from helionyx.runtime import Runtime, open_runtime
from helionyx.telegram.supervisor import Supervisor

log = logging.getLogger("helionyx.startup")

SD_LISTEN_FDS_START = 3
#: How long in-flight requests get after SIGTERM; below systemd's default TimeoutStopSec.
GRACEFUL_SECONDS = 8
#: After it stops accepting, how long a just-accepted connection gets to deliver its request.
ACCEPT_GRACE_SECONDS = 0.1


class DrainingServer(uvicorn.Server):
    """uvicorn, but a connection accepted just before SIGTERM is served rather than cut, and
    SIGHUP hands the socket to the next release (`helionyx.handover`).

    uvicorn closes connections that have no request in progress the moment it shuts down; a
    client whose connection was accepted an instant earlier would see it reset. Stop accepting
    first (new connections wait in the listening socket's backlog, which systemd keeps open for
    the next process), give requests already on the wire a moment to arrive, then shut down.
    """

    on_started: Callable[[], None] | None = None
    #: Connections the release before passed on, being taken into the loop.
    _adopting: set[asyncio.Task[object]]

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start-up, then what was waiting for the server to run (the SIGHUP handler)."""
        await super().startup(sockets=sockets)
        if self.on_started is not None:
            self.on_started()

    def _stop_accepting_now(self) -> None:
        """No more accepts. Not `Server.close()`: a connection accepted in the same loop
        iteration becomes a transport only in the next, which a closed server refuses
        (asyncio's `Server._attach` asserts it is open), dropping it unanswered."""
        loop = asyncio.get_running_loop()
        for server in self.servers:
            for sock in server.sockets:
                loop.remove_reader(sock.fileno())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop accepting, wait ACCEPT_GRACE_SECONDS, then uvicorn's graceful shutdown."""
        self._stop_accepting_now()
        await asyncio.sleep(ACCEPT_GRACE_SECONDS)
        await super().shutdown(sockets=sockets)

    async def stop_accepting(self, pass_on: handover.PassOn | None) -> None:
        """For a hand-over: stop accepting, and return once every accepted connection is
        either passed on to the successor (`pass_on`: between requests, at once or as soon as
        the request in flight on it is answered) or closed after its answer (None: a successor
        that adopts none). One accepted an instant ago, whose request has not fully arrived, is
        waited for up to `FIRST_REQUEST_SECONDS`, not cut: closing it with its request unread
        would reset it."""
        self._stop_accepting_now()
        # A connection accepted just before is not in `connections` until its transport is
        # made, an iteration or two later: let that happen, or it would be cut at exit.
        await asyncio.sleep(0.005)
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline, patience = now + GRACEFUL_SECONDS, now + handover.FIRST_REQUEST_SECONDS
        while self.server_state.connections or self.server_state.tasks:
            now = loop.time()
            if now >= deadline:
                log.error("hand-over: requests still in flight after %d s", GRACEFUL_SECONDS)
                break
            idle = [c for c in self.server_state.connections if adoption.idle(c)]
            if pass_on is not None and idle and pass_on(idle) < len(idle):
                pass_on = None  # the rest are closed, as for a successor that adopts none
            for connection in list(self.server_state.connections):
                cycle = getattr(connection, "cycle", None)
                if cycle is None and now < patience:
                    continue  # accepted, its request not read yet
                if pass_on is not None and cycle is not None and not cycle.response_complete:
                    continue  # answered with keep-alive, then passed on like the others
                connection.shutdown()  # idle: closed now; mid-request: closed after it
            await asyncio.sleep(0.002)

    def adopt(self, connections: list[socket.socket]) -> None:
        """Serve connections the release before passed on, as if accepted here."""
        loop = asyncio.get_running_loop()
        config, state = self.config, self.server_state

        def protocol() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=state, app_state=self.lifespan.state
            )

        self._adopting = set()
        for connection in connections:
            task = loop.create_task(loop.connect_accepted_socket(protocol, connection))
            self._adopting.add(task)
            task.add_done_callback(self._adopted)

    def _adopted(self, task: asyncio.Task[object]) -> None:
        self._adopting.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("hand-over: a connection passed on could not be served (%s)", error)


def inherited_socket() -> socket.socket | None:
    """The listening socket passed by systemd socket activation (sd_listen_fds), if any."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    count = int(os.environ.get("LISTEN_FDS", "0"))
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if count < 1:
        return None
    return socket.socket(fileno=SD_LISTEN_FDS_START)


def serve(settings: Settings) -> int:
    """Start phase by phase, serve until SIGTERM/SIGINT, drain, and return the exit code."""
    log.info(
        "config: env=%s version=%s commit=%s log_level=%s",
        settings.environment,
        __version__,
        __commit__,
        settings.log_level,
    )
    # Until the server runs, a hand-over request must not kill the process (SIGHUP's default).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    reporter = handover.Reporter()
    if reporter.active:
        log.info(
            "hand-over: starting beside the running release, not accepting yet "
            "(imports and the log read at nice %d for at most %.0f s)",
            successor.NICENESS,
            successor.YIELD_SECONDS,
        )
    runtime = open_runtime(settings, beside=reporter.active)
    try:
        telegram = Supervisor(settings)
        checks = [telegram.readiness]
        server: DrainingServer | None = None

        def exit_now() -> None:
            assert server is not None
            server.should_exit = True

        async def stop_accepting(pass_on: handover.PassOn | None) -> None:
            assert server is not None
            await server.stop_accepting(pass_on)

        handing = handover.Handover(stop_accepting, runtime.close, exit_now)
        app = create_app(
            settings,
            runtime.assistant,
            background=telegram.running,
            checks=checks,
            handover=handing.report,
        )
        sock = inherited_socket()
        where = (
            f"inherited socket {sock.getsockname()}"
            if sock
            else f"{settings.api_host}:{settings.api_port}"
        )
        log.info("api: serving on %s", where)
        if settings.telegram_enabled:
            log.info("adapters: telegram on for chat %s", settings.telegram_chat_id)
        else:
            log.info("adapters: telegram off (TELEGRAM_BOT_TOKEN or TELEGRAM_CHAT_ID not set)")
        config = uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
            server_header=False,
            **uvicorn_limits(settings.max_connections, settings.request_read_timeout),
        )
        config.load()  # imports the protocols now: not while connections wait
        server = DrainingServer(config)
        adopted: list[socket.socket] = []

        def started() -> None:
            assert server is not None
            if sock is not None and handover.available():
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, handing.begin)
            server.adopt(adopted)

        server.on_started = started
        settle_heap()
        if reporter.active:
            adopted.extend(take_over(runtime, reporter, checks))
        # uvicorn re-raises the stop signal after its graceful shutdown; with these handlers in
        # place that re-raise is a no-op, so a requested stop exits 0 instead of dying by signal.
        signal.signal(signal.SIGTERM, lambda *_: None)
        signal.signal(signal.SIGINT, lambda *_: None)
        server.run(sockets=[sock] if sock else None)
        if not server.started:
            log.error("api: the server did not start")
            return 1
        log.info("stopped cleanly")
        return 0
    finally:
        runtime.close()


def settle_heap() -> None:
    """Leave what start-up built out of every later garbage collection.

    A full collection walks every object alive: the ~60 000 the web stack leaves (and every
    event read from the log) took 15-25 ms each time, every few seconds under load, in the
    middle of requests. Frozen (gc.freeze), they are never walked again. No collection first:
    start-up leaves no cycles worth one (it found none, and took 25-180 ms).
    """
    gc.freeze()


def take_over(
    runtime: Runtime, reporter: handover.Reporter, checks: list[Callable[[], str | None]]
) -> list[socket.socket]:
    """In a successor: get ready without accepting, then take the log and the socket over;
    the connections the running process passed on (`helionyx.adoption`)."""
    handover.become_ready(
        reporter,
        lambda: not_ready(runtime.assistant, checks, catch_up=runtime.projections_open),
    )
    ready = time.monotonic()
    taken = runtime.take_over()
    # Passed on before the log was let go: all here now.
    connections = reporter.connections()
    # Before the old process exits: systemd must not take its exit for the service's end.
    handover.notify(f"MAINPID={os.getpid()}")
    reporter.say("taken")
    reporter.close()
    log.info(
        "hand-over: this process serves now, %.0f ms after it was ready (%d event(s) taken in)",
        (time.monotonic() - ready) * 1000,
        taken,
    )
    if connections:
        log.info("hand-over: adopted %d connection(s) from the release before", len(connections))
    return connections
