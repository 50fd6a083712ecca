"""A count of the server errors (5xx) the service has answered since it started: what a
deploy's watch reads from /health to tell a release that turned bad after it became healthy."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

READY_PATH = "/health/ready"


class ErrorCounter:
    """The count itself, shared by the middleware that counts and the route that reports it."""

    def __init__(self) -> None:
        self.count = 0


class ServerErrors:
    """Pure ASGI middleware counting 5xx answers and unhandled exceptions into `counter`."""

    def __init__(self, app: ASGIApp, counter: ErrorCounter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # A readiness probe's 503 is its verdict ("not ready: catching up", "disk full"), not
        # an error the release made: counted, it would make a deploy's watch roll back a
        # healthy release for load it was handling.
        verdict = scope.get("path") == READY_PATH

        async def counting_send(message: Message) -> None:
            start = message["type"] == "http.response.start"
            if start and message["status"] >= 500 and not (verdict and message["status"] == 503):
                self.counter.count += 1
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            # Turned into a 500 by the outermost handler, which this middleware sits inside.
            self.counter.count += 1
            raise
