"""The long-poll loop: Telegram in, the Helionyx HTTP API, Telegram out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import httpx

from helionyx.config import Settings
from helionyx.telegram.botapi import BotApi, BotApiError, IncomingMessage

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0


class ServiceClient:
    """The adapter's only way into the service: its HTTP interaction endpoint."""

    def __init__(self, base_url: str, token: str, client: httpx.AsyncClient) -> None:
        self._url = base_url.rstrip("/") + "/api/v1/interactions/telegram"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._client = client

    async def interact(self, message: IncomingMessage) -> str:
        """Forward one chat message and return the reply text."""
        response = await self._client.post(
            self._url,
            json={
                "chat_id": message.chat_id,
                "text": message.text,
                "message_id": message.message_id,
            },
            headers=self._headers,
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["reply"])


class TelegramAdapter:
    """Serves one chat; everything else is logged and ignored."""

    def __init__(
        self, bot: BotApi, service: ServiceClient, chat_id: int, poll_timeout: int = 25
    ) -> None:
        self.bot = bot
        self.service = service
        self.chat_id = chat_id
        self.poll_timeout = poll_timeout
        self.offset: int | None = None

    async def run(self) -> None:
        """Poll until cancelled or until Telegram rejects the token."""
        backoff = 1.0
        while True:
            try:
                await self.poll_once()
                backoff = 1.0
            except BotApiError as exc:
                if exc.code == 401:
                    log.error("telegram adapter stopped: the bot token was rejected (401)")
                    return
                if exc.code == 429 and exc.retry_after is not None:
                    delay = float(exc.retry_after)
                    log.warning("telegram rate limit: retrying in %.0f s", delay)
                elif exc.code == 409:
                    delay = backoff
                    log.warning(
                        "telegram conflict (409): another poller or a webhook is active; "
                        "retrying in %.0f s",
                        delay,
                    )
                else:
                    delay = backoff
                    log.warning("%s; retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except httpx.HTTPError as exc:
                # The message names the exception type only: request URLs carry the token.
                log.warning(
                    "telegram adapter: %s talking to %s; retrying in %.0f s",
                    type(exc).__name__,
                    "the service" if _is_service_error(exc) else "Telegram",
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def poll_once(self) -> int:
        """Fetch one batch of updates and answer them; returns how many were served."""
        served = 0
        for message in await self.bot.get_updates(self.offset, self.poll_timeout):
            if message.text and message.chat_id == self.chat_id:
                reply = await self.service.interact(message)
                await self.bot.send_message(message.chat_id, reply, reply_to=message.message_id)
                served += 1
            elif message.chat_id != self.chat_id:
                log.info("telegram: ignored a message from chat %s (not served)", message.chat_id)
            # Confirm only after handling, so a failure re-delivers the update.
            self.offset = message.update_id + 1
        return served


def _is_service_error(exc: httpx.HTTPError) -> bool:
    try:
        return "/api/v1/" in exc.request.url.path
    except RuntimeError:
        return False


def service_url(settings: Settings) -> str:
    """The loopback address of this service's own API."""
    host = settings.api_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{settings.api_port}"


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[None]:
    """Run the adapter in the background for as long as the context is open."""
    if not settings.telegram_enabled:
        yield
        return
    assert settings.telegram_bot_token is not None
    assert settings.telegram_chat_id is not None
    async with httpx.AsyncClient() as client:
        adapter = TelegramAdapter(
            BotApi(
                settings.telegram_api_base, settings.telegram_bot_token.get_secret_value(), client
            ),
            ServiceClient(
                service_url(settings), settings.helionyx_api_token.get_secret_value(), client
            ),
            int(settings.telegram_chat_id),
            settings.telegram_poll_timeout,
        )
        task = asyncio.create_task(adapter.run(), name="telegram-adapter")
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
