"""The Telegram adapter as a watched background task of the service.

If the adapter's task ever ends by an error (a bug, an update nothing foresaw), it is logged
with its traceback at once, readiness says so, and the same adapter (its offset and retry
counts kept) is started again after a back-off; a successful poll clears the problem. A token
Telegram rejects stops it for good: readiness says that too, for as long as the service runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

import httpx

from helionyx.config import Settings
from helionyx.telegram.adapter import MAX_BACKOFF, ServiceClient, TelegramAdapter
from helionyx.telegram.botapi import BotApi, bot_id
from helionyx.telegram.deadletters import DEAD_LETTERS, DeadLetters

log = logging.getLogger("helionyx.telegram.adapter")


class Supervisor:
    """Runs one adapter and restarts it when its task ends by an error."""

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        #: Why the adapter is not serving now, for readiness; None while it is.
        self.problem: str | None = None
        self.restarts = 0

    def readiness(self) -> str | None:
        """The adapter's problem, as a reason for /health/ready (None: nothing to say)."""
        return self.problem

    async def watch(self, adapter: TelegramAdapter) -> None:
        """Run `adapter` until cancelled or stopped for good, restarting it after a crash."""
        delay = 1.0

        def alive() -> None:
            nonlocal delay
            delay = 1.0
            if self.problem is not None:
                log.info("telegram adapter: serving again")
            self.problem = None

        adapter.on_poll = alive
        while True:
            try:
                await adapter.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.restarts += 1
                self.problem = (
                    f"the telegram adapter failed ({type(exc).__name__}); "
                    f"restarting it in {delay:.0f} s"
                )
                log.exception("telegram adapter: ended by an error; restarting in %.0f s", delay)
                await self._sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            self.problem = f"the telegram adapter stopped: {adapter.stopped}"
            return

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the watched adapter in the background for as long as the context is open."""
        settings = self.settings
        if not settings.telegram_enabled:
            yield
            return
        assert settings.telegram_bot_token is not None
        assert settings.telegram_chat_id is not None
        token = settings.telegram_bot_token.get_secret_value()
        async with httpx.AsyncClient() as client:
            adapter = TelegramAdapter(
                BotApi(settings.telegram_api_base, token, client),
                ServiceClient(
                    service_url(settings),
                    settings.helionyx_api_token.get_secret_value(),
                    client,
                    bot_id(token),
                ),
                int(settings.telegram_chat_id),
                settings.telegram_poll_timeout,
                dead_letters=DeadLetters(settings.event_store_path / DEAD_LETTERS),
            )
            task = asyncio.create_task(self.watch(adapter), name="telegram-adapter")
            try:
                yield
            finally:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task


def service_url(settings: Settings) -> str:
    """The loopback address of this service's own API."""
    host = settings.api_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{settings.api_port}"
