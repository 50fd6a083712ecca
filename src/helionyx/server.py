"""Running the API under uvicorn, on its own port or on a socket systemd hands over."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket

import uvicorn

from helionyx import __commit__, __version__
from helionyx.api import create_app
from helionyx.config import Settings
from helionyx.connections import uvicorn_limits
from helionyx.runtime import open_runtime
from helionyx.telegram.supervisor import Supervisor

log = logging.getLogger("helionyx.startup")

SD_LISTEN_FDS_START = 3
#: How long in-flight requests get after SIGTERM; below systemd's default TimeoutStopSec.
GRACEFUL_SECONDS = 8
#: After it stops accepting, how long a just-accepted connection gets to deliver its request.
ACCEPT_GRACE_SECONDS = 0.1


class DrainingServer(uvicorn.Server):
    """uvicorn, but a connection accepted just before SIGTERM is served rather than cut.

    uvicorn closes connections that have no request in progress the moment it shuts down; a
    client whose connection was accepted an instant earlier would see it reset. Stop accepting
    first (new connections wait in the listening socket's backlog, which systemd keeps open for
    the next process), give requests already on the wire a moment to arrive, then shut down.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop accepting, wait ACCEPT_GRACE_SECONDS, then uvicorn's graceful shutdown."""
        for server in self.servers:
            server.close()
        await asyncio.sleep(ACCEPT_GRACE_SECONDS)
        await super().shutdown(sockets=sockets)


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
    runtime = open_runtime(settings)
    try:
        telegram = Supervisor(settings)
        app = create_app(
            settings,
            runtime.assistant,
            background=telegram.running,
            checks=[telegram.readiness],
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
        server = DrainingServer(config)
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
