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


@dataclass(frozen=True)
class Unusable:
    """An update that cannot be served as it is: confirmed, and dead-lettered when `kept`
    (it looked like a message; another kind of update is confirmed quietly)."""

    update_id: int
    reason: str
    kept: bool = True


Update = IncomingMessage | Unusable


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

    async def get_updates(self, offset: int | None, timeout: int) -> list[Update]:
        """Long-poll for new updates, each a message or an Unusable saying why it is not one.

        Raises BotApiError when the answer holds nothing that can even be confirmed (no list,
        or no item with an integer update_id), so the caller backs off instead of spinning.
        """
        params: dict[str, Any] = {"timeout": timeout, "allowed_updates": ["message"]}
        if offset is not None:
            params["offset"] = offset
        result = await self.call("getUpdates", params, timeout=timeout + 10)
        if not isinstance(result, list):
            raise BotApiError("getUpdates", 0, "the result is not a list of updates", None)
        updates = [parsed for item in result if (parsed := parse_update(item)) is not None]
        if result and not updates:
            raise BotApiError("getUpdates", 0, "no update in the answer has an update_id", None)
        return updates

    async def send_message(self, chat_id: int, text: str, reply_to: int | None = None) -> None:
        """Send one text message (at most MAX_MESSAGE long) to a chat."""
        params: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if reply_to:
            params["reply_parameters"] = {"message_id": reply_to}
        await self.call("sendMessage", params, timeout=30)


def parse_update(item: object) -> Update | None:
    """One element of getUpdates' result; None when it has no update_id to confirm it by."""
    if not isinstance(item, dict) or not _integer(item.get("update_id")):
        return None
    update_id = int(item["update_id"])
    if "message" not in item:
        return Unusable(update_id, f"not a message ({', '.join(sorted(item)[:3])})", kept=False)
    message = item["message"]
    if not isinstance(message, dict):
        return Unusable(update_id, "its message is not an object")
    chat = message.get("chat")
    if not isinstance(chat, dict) or not _integer(chat.get("id")):
        return Unusable(update_id, "its message has no integer chat.id")
    if not _integer(message.get("message_id")):
        return Unusable(update_id, "its message has no integer message_id")
    text = message.get("text")
    if text is not None and not isinstance(text, str):
        return Unusable(update_id, "its message text is not a string")
    return IncomingMessage(update_id, int(chat["id"]), int(message["message_id"]), _sound(text))


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sound(text: str | None) -> str | None:
    """The text with any lone surrogate (JSON can spell one; UTF-8 cannot) replaced by U+FFFD."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def bot_id(token: str) -> int:
    """The bot's numeric id: the part of its token before the colon."""
    head = token.partition(":")[0]
    return int(head) if head.isdigit() else 0


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
