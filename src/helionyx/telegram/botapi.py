"""A small client for the Telegram Bot API methods the adapter uses (getUpdates, sendMessage).

Facts from https://core.telegram.org/bots/api it relies on: every answer is `{"ok": …}` with
`error_code`, `description` and `parameters.retry_after` on failure; a message text is 1-4096
characters; 401 is a wrong token and 404 a malformed one; 409 means a webhook is set or another
getUpdates poller runs; 429 carries `retry_after`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

#: sendMessage's limit on a text, counted as Telegram counts (UTF-16 code units).
MAX_MESSAGE = 4096


class BotApiError(Exception):
    """The Bot API answered `ok: false` (or not JSON); carries its code and retry hint."""

    def __init__(self, method: str, code: int, description: str, retry_after: int | None) -> None:
        self.method = method
        self.code = code
        self.description = description
        self.retry_after = retry_after
        super().__init__(f"Telegram {method} failed with {code}: {description}")


@dataclass(frozen=True)
class IncomingMessage:
    """The parts of an Update's `message` the adapter needs."""

    update_id: int
    chat_id: int
    message_id: int
    text: str | None


class BotApi:
    """`https://api.telegram.org/bot<token>/<method>`, JSON in, `{ok, result}` out."""

    def __init__(self, base_url: str, token: str, client: httpx.AsyncClient) -> None:
        # The token lives in the URL path, so this URL is never logged or put in an error.
        self._url = f"{base_url.rstrip('/')}/bot{token}/"
        self._client = client

    async def call(self, method: str, params: dict[str, Any], timeout: float) -> Any:
        """Call one method; return its `result` or raise BotApiError."""
        response = await self._client.post(self._url + method, json=params, timeout=timeout)
        try:
            body = response.json()
        except ValueError:
            raise BotApiError(method, response.status_code, "response is not JSON", None) from None
        if not isinstance(body, dict) or not body.get("ok"):
            body = body if isinstance(body, dict) else {}
            parameters = body.get("parameters") or {}
            raise BotApiError(
                method,
                int(body.get("error_code", response.status_code)),
                str(body.get("description", "no description")),
                parameters.get("retry_after"),
            )
        return body.get("result")

    async def get_updates(self, offset: int | None, timeout: int) -> list[IncomingMessage]:
        """Long-poll for new messages; other update kinds are confirmed and skipped."""
        params: dict[str, Any] = {"timeout": timeout, "allowed_updates": ["message"]}
        if offset is not None:
            params["offset"] = offset
        result = await self.call("getUpdates", params, timeout=timeout + 10)
        updates: list[IncomingMessage] = []
        for update in result or []:
            message = update.get("message") or {}
            chat = message.get("chat") or {}
            updates.append(
                IncomingMessage(
                    update_id=int(update["update_id"]),
                    chat_id=int(chat.get("id", 0)),
                    message_id=int(message.get("message_id", 0)),
                    text=message.get("text"),
                )
            )
        return updates

    async def send_message(self, chat_id: int, text: str, reply_to: int | None = None) -> None:
        """Send one text message (at most MAX_MESSAGE long) to a chat."""
        params: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if reply_to:
            params["reply_parameters"] = {"message_id": reply_to}
        await self.call("sendMessage", params, timeout=30)


def telegram_length(text: str) -> int:
    """A text's length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def split_message(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Cut a text into parts Telegram accepts, at line breaks where possible."""
    parts: list[str] = []
    rest = text
    while telegram_length(rest) > limit:
        cut = len(rest)
        while telegram_length(rest[:cut]) > limit:
            cut = cut * limit // telegram_length(rest[:cut]) or 1
        newline = rest.rfind("\n", 0, cut)
        if newline > 0:
            cut = newline + 1
        parts.append(rest[:cut].rstrip("\n") or rest[:cut])
        rest = rest[cut:]
    if rest or not parts:
        parts.append(rest)
    return parts
