"""Pure ASGI guards on what a client sends: a body over the size limit is refused with 413, a
body that stops arriving for BODY_TIMEOUT seconds with 408; HEAD is answered as GET is, with
no body."""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Seconds a request body may pause between chunks; a slower client holds a worker for nothing.
BODY_TIMEOUT = 10.0


class HeadAsGet:
    """Answer HEAD wherever GET is answered: the same status and headers, no body (RFC 9110)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def no_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, no_body)


class BodySizeLimit:
    """Reject bodies larger than `limit` bytes, by Content-Length or while streaming, and
    bodies that stall for `timeout` seconds."""

    def __init__(self, app: ASGIApp, limit: int, timeout: float = BODY_TIMEOUT) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send)
            return
        received = 0
        refused = False
        started = False
        complete = False

        async def counting_receive() -> Message:
            nonlocal received, refused, complete
            if complete:
                return await receive()  # after the body: only a disconnect can come
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                refused = True
                await self._refuse(send, 408, f"request body stalled for {self.timeout:.0f} s")
                return {"type": "http.disconnect"}
            complete = message["type"] != "http.request" or not message.get("more_body")
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit and not started:
                    # Answer now and tell the app the client went away, so the app neither
                    # sees the oversized body nor gets to answer the request itself.
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, send: Send, status: int = 413, detail: str = "") -> None:
        detail = detail or f"request body larger than {self.limit} bytes"
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
