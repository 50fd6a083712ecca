"""The long-poll loop: Telegram in, the Helionyx HTTP API, Telegram out.

It never wedges on one message. Each update is sent to the service with the update's id and the
bot's id, the service's key for it (in the bot's own key space), so re-delivering it after any
failure stores nothing twice. A message the service refuses (4xx) gets a short reply, is
dead-lettered and confirmed; a reply Telegram refuses for good (400, 403) is dead-lettered and
confirmed; anything that may pass on a retry (5xx, 429, a dropped connection) is retried
MAX_ATTEMPTS times, then dead-lettered and confirmed, so the next messages flow. An update that
is not a well-formed message is dead-lettered (or, another kind of update, skipped) and
confirmed. Back-off is per failing call: any success starts it again at one second.

`Supervisor` runs the adapter and watches it: should the task ever end by an error, it is
logged, readiness says so, and it is started again; a token Telegram rejects stops it for good,
and readiness says that too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from helionyx.telegram.botapi import (
    BotApi,
    BotApiError,
    IncomingMessage,
    Unusable,
    split_message,
)
from helionyx.telegram.deadletters import DEAD_LETTERS, DeadLetters

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0
MAX_ATTEMPTS = 5
TOO_LONG = "Sorry, that message is too long for me: 4,000 characters at most. Please split it."
REFUSED = "Sorry, I could not take that message ({reason})."


class ServiceRefused(Exception):
    """The service answered 4xx: this message will never be taken as it is."""

    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"the service refused the message ({status})")


class ServiceFailed(Exception):
    """The service could not answer now (5xx, 409, no connection); a retry may pass."""


class AdapterStopped(Exception):
    """Telegram says this adapter cannot work (wrong or malformed token)."""


class ServiceClient:
    """The adapter's only way into the service: its HTTP interaction endpoint."""

    def __init__(self, base_url: str, token: str, client: httpx.AsyncClient, bot: int = 0) -> None:
        self._url = base_url.rstrip("/") + "/api/v1/interactions/telegram"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._client = client
        self._bot = bot

    async def interact(self, message: IncomingMessage) -> str:
        """Forward one chat message and return the reply text."""
        try:
            response = await self._client.post(
                self._url,
                json={
                    "chat_id": message.chat_id,
                    "text": message.text,
                    "message_id": message.message_id,
                    # The service's key for it, in this bot's own key space.
                    "update_id": message.update_id,
                    "bot_id": self._bot,
                },
                headers=self._headers,
                timeout=30,
            )
        except httpx.HTTPError as exc:
            raise ServiceFailed(f"cannot reach the service ({type(exc).__name__})") from None
        if response.status_code == 401:
            raise AdapterStopped("the service refused the adapter's API token (401)")
        if response.status_code in (409, 429) or response.status_code >= 500:
            raise ServiceFailed(f"the service answered {response.status_code}")
        if response.status_code >= 400:
            raise ServiceRefused(response.status_code, _detail(response))
        return str(response.json()["reply"])


class TelegramAdapter:
    """Serves one chat; everything else is logged and ignored."""

    def __init__(
        self,
        bot: BotApi,
        service: ServiceClient,
        chat_id: int,
        poll_timeout: int = 25,
        *,
        dead_letters: DeadLetters | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.bot = bot
        self._sleep = sleep
        self.service = service
        self.chat_id = chat_id
        self.poll_timeout = poll_timeout
        self.dead_letters = dead_letters
        self.offset: int | None = None
        self._attempts: dict[int, int] = {}
        self._parts_sent: dict[int, int] = {}
        #: The next wait after a failure; any success sets it back to one second.
        self.backoff = 1.0
        #: Called after every getUpdates that answered (the supervisor's sign of life).
        self.on_poll: Callable[[], None] = lambda: None
        #: Why the adapter stopped for good (Telegram rejected the token), once it has.
        self.stopped: str | None = None
        self._polls_failing = False

    async def run(self) -> None:
        """Poll until cancelled or until Telegram says the token cannot work."""
        while True:
            try:
                await self.poll_once()
                continue
            except AdapterStopped as exc:
                log.error("telegram adapter stopped: %s", exc)
                self.stopped = str(exc)
                return
            except BotApiError as exc:
                delay = self._delay(exc, self.backoff)
            except (ServiceFailed, httpx.HTTPError) as exc:
                # Never the URL: the Bot API's carries the token.
                what = exc if isinstance(exc, ServiceFailed) else type(exc).__name__
                log.warning("telegram adapter: %s; retrying in %.0f s", what, self.backoff)
                delay = self.backoff
            await self._sleep(delay)
            self.backoff = min(self.backoff * 2, MAX_BACKOFF)

    def _delay(self, exc: BotApiError, backoff: float) -> float:
        if exc.code == 429 and exc.retry_after is not None:
            log.warning("telegram rate limit: retrying in %d s", exc.retry_after)
            return float(exc.retry_after)
        if exc.code == 409:
            log.warning(
                "telegram conflict (409: %s): a webhook is set for this bot or another process "
                "polls it; delete the webhook (deleteWebhook) or stop the other poller; "
                "retrying in %.0f s",
                exc.description,
                backoff,
            )
            return backoff
        log.warning("%s; retrying in %.0f s", exc, backoff)
        return backoff

    async def poll_once(self) -> int:
        """Fetch one batch of updates and answer them; returns how many were served."""
        served = 0
        try:
            updates = await self.bot.get_updates(self.offset, self.poll_timeout)
        except (BotApiError, httpx.HTTPError) as exc:
            if isinstance(exc, BotApiError):
                _stop_if_fatal(exc)
            self._polls_failing = True
            raise
        if self._polls_failing:
            self._polls_failing, self.backoff = False, 1.0  # the failing call succeeded
        self.on_poll()
        for message in updates:
            if isinstance(message, Unusable):
                if message.kept:
                    self._give_up(message, f"not a usable message: {message.reason}")
                else:
                    log.info("telegram: skipped update %d: %s", message.update_id, message.reason)
            elif message.text and message.chat_id == self.chat_id:
                await self._serve(message)
                served += 1
            elif message.chat_id != self.chat_id:
                log.info("telegram: ignored a message from chat %s (not served)", message.chat_id)
            else:
                log.info(
                    "telegram: update %d has no text (a photo, a sticker…): confirmed, not stored",
                    message.update_id,
                )
            # Confirmed only once handled (or given up on), so a failure re-delivers it.
            self._confirm(message)
        return served

    async def _serve(self, message: IncomingMessage) -> None:
        try:
            try:
                reply = await self.service.interact(message)
            except ServiceRefused as exc:
                # Not stored: the dead letter says so, and the chat is told.
                self._give_up(message, f"the service refused it ({exc.status}: {exc.detail})")
                reply = _refusal(exc)
            await self._reply(message, reply)
        except (ServiceFailed, httpx.HTTPError) as exc:
            self._count_failure(message, str(exc) or type(exc).__name__)
        except BotApiError as exc:
            _stop_if_fatal(exc)
            if exc.code in (400, 403):
                # Telegram will never take this reply (blocked, chat gone, bad text).
                self._give_up(message, f"Telegram refused the reply: {exc}")
                return
            self._count_failure(message, str(exc), exc)

    async def _reply(self, message: IncomingMessage, reply: str) -> None:
        parts = split_message(reply)
        done = self._parts_sent.get(message.update_id, 0)
        for index in range(done, len(parts)):
            reply_to = message.message_id if index == 0 else None
            await self.bot.send_message(message.chat_id, parts[index], reply_to=reply_to)
            self._parts_sent[message.update_id] = index + 1

    def _count_failure(
        self, message: IncomingMessage, reason: str, error: Exception | None = None
    ) -> None:
        attempts = self._attempts.get(message.update_id, 0) + 1
        self._attempts[message.update_id] = attempts
        if attempts >= MAX_ATTEMPTS:
            self._give_up(message, f"{reason} (after {attempts} attempts)")
            return
        raise error if error is not None else ServiceFailed(reason)

    def _give_up(self, message: IncomingMessage | Unusable, reason: str) -> None:
        log.error(
            "telegram: update %d given up and confirmed: %s; recorded in %s",
            message.update_id,
            reason,
            DEAD_LETTERS,
        )
        if self.dead_letters is not None:
            self.dead_letters.record(message, reason, self._attempts.get(message.update_id, 1))

    def _confirm(self, message: IncomingMessage | Unusable) -> None:
        # Progress: whatever failed before is behind us, so the next failure waits 1 s.
        self.backoff = 1.0
        self.offset = message.update_id + 1
        self._attempts.pop(message.update_id, None)
        self._parts_sent.pop(message.update_id, None)


def _stop_if_fatal(exc: BotApiError) -> None:
    if exc.code == 401:
        raise AdapterStopped(
            "Telegram rejected the bot token (401 Unauthorized); check TELEGRAM_BOT_TOKEN"
        ) from None
    if exc.code == 404:
        raise AdapterStopped(
            "Telegram answered 404 for this bot, as it does for a malformed token; "
            "TELEGRAM_BOT_TOKEN must look like 123456789:AA… (from @BotFather)"
        ) from None


def _refusal(exc: ServiceRefused) -> str:
    detail = exc.detail
    if isinstance(detail, list) and any(
        isinstance(e, dict) and e.get("type") == "string_too_long" for e in detail
    ):
        return TOO_LONG
    if exc.status == 413:
        return TOO_LONG
    return REFUSED.format(reason=f"error {exc.status}")


def _detail(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("detail") if isinstance(body, dict) else None
