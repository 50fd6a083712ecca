"""A local stand-in for the Telegram Bot API, doing what https://core.telegram.org/bots/api says.

Implements `getUpdates` (offset confirms earlier updates, long polling up to `timeout`),
`sendMessage`, `setWebhook` and `deleteWebhook`, at `/bot<token>/<method>`, accepting JSON or
form parameters, answering with the `{"ok": true, "result": ...}` envelope or `{"ok": false,
"error_code", "description", "parameters": {"retry_after"}}` on errors, as the real one does:
- a well-formed but wrong token: 401 Unauthorized; a malformed one: 404 Not Found;
- getUpdates while a webhook is set: 409 Conflict (and scripted 409/429/5xx failures);
- sendMessage: 400 "message is too long" over 4096 characters (UTF-16 code units), 400 for an
  empty text, and scripted failures such as 429 with `retry_after`, 403 (bot blocked), 500;
  `fail_every` makes every Nth call fail with 500, as a degraded Bot API does.
- Answers are JSON with non-ASCII escaped (`\\ud800` stays an escape), so an update can carry
  what JSON can spell and UTF-8 cannot; `push_raw` queues an update exactly as given (a
  malformed one included) and `raw_results` replaces the next getUpdates result verbatim.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.helionyx.servicekit import poll

MAX_TEXT = 4096


@dataclass
class BotApiStandIn:
    """State of the fake Bot API: pending updates, sent messages, scripted failures."""

    token: str
    updates: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[int, str, int | None]] = field(default_factory=list)
    send_failures: list[tuple[int, str, int | None]] = field(default_factory=list)
    webhook: str = ""
    get_updates_calls: int = 0
    send_calls: int = 0
    fail_every: int = 0
    raw_results: list[Any] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    base_url: str = ""

    def push_text(self, chat_id: int, text: str) -> int:
        """Queue a private-chat text message as a new Update; returns its update_id."""
        with self._lock:
            update_id = next(self._ids)
            self.updates.append(
                {
                    "update_id": update_id,
                    "message": {
                        "message_id": 1000 + update_id,
                        "from": {"id": chat_id, "is_bot": False, "first_name": "Tester"},
                        "chat": {"id": chat_id, "type": "private", "first_name": "Tester"},
                        "date": int(time.time()),
                        "text": text,
                    },
                }
            )
        return update_id

    def push_raw(self, update: dict[str, Any]) -> None:
        """Queue an update exactly as given (it may lack or garble any field)."""
        with self._lock:
            self.updates.append(update)

    def fail_next(self, code: int, description: str, retry_after: int | None = None) -> None:
        """Make the next getUpdates call fail with this error."""
        self.failures.append((code, description, retry_after))

    def fail_sending(self, code: int, description: str, retry_after: int | None = None) -> None:
        """Make the next sendMessage call fail with this error."""
        self.send_failures.append((code, description, retry_after))

    def pending(self) -> list[int]:
        """update_ids not yet confirmed by an offset."""
        with self._lock:
            return [u["update_id"] for u in self.updates]

    def replies_to(self, chat_id: int) -> list[str]:
        """Texts sent to a chat so far."""
        with self._lock:
            return [m["text"] for m in self.sent if m["chat"]["id"] == chat_id]

    def wait_for_reply(self, chat_id: int, count: int, timeout: float = 20) -> list[str]:
        """Poll until `count` replies reached `chat_id`."""
        return poll(
            lambda: self.replies_to(chat_id) if len(self.replies_to(chat_id)) >= count else None,
            timeout,
            f"{count} replies to chat {chat_id}",
        )

    # -- the HTTP side -----------------------------------------------------------------
    def app(self) -> Starlette:
        """The ASGI app serving /bot<token>/<method>."""
        return Starlette(
            routes=[Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"])]
        )

    async def _endpoint(self, request: Request) -> Response:
        token = request.path_params["token"]
        if not re.fullmatch(r"[0-9]+:[A-Za-z0-9_-]+", token):
            return _error(404, "Not Found")
        if token != self.token:
            return _error(401, "Unauthorized")
        params = await _params(request)
        method = request.path_params["method"]
        if method == "getUpdates":
            return await self._get_updates(params)
        if method == "sendMessage":
            return self._send_message(params)
        if method == "setWebhook":
            self.webhook = str(params.get("url", ""))
            return JSONResponse({"ok": True, "result": True, "description": "Webhook was set"})
        if method == "deleteWebhook":
            self.webhook = ""
            return JSONResponse({"ok": True, "result": True, "description": "Webhook was deleted"})
        return _error(404, "Not Found")

    async def _get_updates(self, params: dict[str, Any]) -> Response:
        self.get_updates_calls += 1
        if self.webhook:
            return _error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        if self.failures:
            code, description, retry_after = self.failures.pop(0)
            return _error(code, description, retry_after)
        if self.raw_results:
            return _json({"ok": True, "result": self.raw_results.pop(0)})
        offset = int(params.get("offset", 0))
        timeout = float(params.get("timeout", 0))
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if offset:
                    self.updates = [u for u in self.updates if _id(u) >= offset]
                pending = list(self.updates)
            if pending or time.monotonic() >= deadline:
                return _json({"ok": True, "result": pending})
            await asyncio.sleep(0.05)

    def _send_message(self, params: dict[str, Any]) -> JSONResponse:
        self.send_calls += 1
        if self.fail_every and self.send_calls % self.fail_every == 0:
            return _error(500, "Internal Server Error")
        if self.send_failures:
            code, description, retry_after = self.send_failures.pop(0)
            return _error(code, description, retry_after)
        try:
            chat_id = int(params["chat_id"])
            text = str(params["text"])
        except (KeyError, ValueError):
            return _error(400, "Bad Request: message text is empty")
        if not text:
            return _error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > MAX_TEXT:
            return _error(400, "Bad Request: message is too long")
        with self._lock:
            message = {
                "message_id": 5000 + len(self.sent),
                "from": {"id": 1, "is_bot": True, "first_name": "Helionyx", "username": "hx_bot"},
                "chat": {"id": chat_id, "type": "private"},
                "date": int(time.time()),
                "text": text,
            }
            self.sent.append(message)
        return JSONResponse({"ok": True, "result": message})


def _id(update: dict[str, Any]) -> int:
    """An update's id for the offset rule; a malformed one counts as confirmed by any offset."""
    value = update.get("update_id")
    return value if isinstance(value, int) else -1


def _json(body: dict[str, Any]) -> Response:
    """JSON as the Bot API sends it: non-ASCII escaped, so a lone surrogate can travel."""
    return Response(json.dumps(body), media_type="application/json")


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            params.update(await request.json())
        elif content_type:
            params.update(dict(await request.form()))
    return params


def _error(code: int, description: str, retry_after: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return JSONResponse(body, status_code=code)


@contextmanager
def serving(token: str) -> Iterator[BotApiStandIn]:
    """Run a stand-in on a loopback port for the duration of the context."""
    standin = BotApiStandIn(token)
    # Bound here and handed over: a port picked first and bound later can be taken between.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(standin.app(), log_config=None))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    poll(lambda: server.started or None, 10, "the Bot API stand-in to start")
    standin.base_url = f"http://127.0.0.1:{port}"
    try:
        yield standin
    finally:
        # A long poll still held open is not worth waiting for once the test is over.
        server.should_exit = server.force_exit = True
        thread.join(timeout=10)
