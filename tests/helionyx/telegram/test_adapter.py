"""The Telegram adapter against a local Bot API stand-in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helionyx.telegram.adapter import TelegramAdapter
from helionyx.telegram.botapi import BotApi, IncomingMessage
from tests.helionyx.servicekit import free_port, running_service, service_env
from tests.helionyx.telegram.botapi_standin import BotApiStandIn, serving

BOT_TOKEN = "123456:AAtest-bot-token-secret"
ALLOWED = 4242
STRANGER = 777


@pytest.fixture
def botapi() -> Iterator[BotApiStandIn]:
    with serving(BOT_TOKEN) as standin:
        yield standin


@pytest.mark.e2e
def test_the_allowed_chat_gets_replies_and_other_chats_get_nothing(
    tmp_path: Path, botapi: BotApiStandIn
) -> None:
    env = service_env(
        tmp_path,
        free_port(),
        TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_CHAT_ID=str(ALLOWED),
        TELEGRAM_API_BASE=botapi.base_url,
        TELEGRAM_POLL_TIMEOUT="1",
    )
    with running_service(env, tmp_path / "log", tmp_path) as service:
        botapi.push_text(ALLOWED, "todo: buy milk\ntodo: call the plumber")
        assert botapi.wait_for_reply(ALLOWED, 1) == ["Captured. 2 todo(s) added."]
        botapi.push_text(STRANGER, "/todos")
        botapi.push_text(ALLOWED, "/todos")
        replies = botapi.wait_for_reply(ALLOWED, 2)
        assert replies[1] == "Open todos:\n1. buy milk\n2. call the plumber"
        assert botapi.replies_to(STRANGER) == []
        with service.client() as client:
            assert client.get("/api/v1/state").json()["events"]["by_type"]["MessageIngested"] == 1
        assert service.stop() == 0
    log = service.log()
    assert "telegram on for chat 4242" in log
    assert f"ignored a message from chat {STRANGER}" in log
    assert BOT_TOKEN not in log


@pytest.mark.e2e
def test_without_a_token_the_adapter_is_off_and_says_so(tmp_path: Path) -> None:
    with running_service(service_env(tmp_path, free_port()), tmp_path / "log", tmp_path) as service:
        assert service.stop() == 0
    assert "telegram off" in service.log()


class FakeService:
    """Answers like the interaction endpoint, recording what it was sent."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def interact(self, message: IncomingMessage) -> str:
        self.seen.append(message.text or "")
        return f"echo: {message.text}"


async def _run_until(adapter: TelegramAdapter, done: asyncio.Event, timeout: float) -> None:
    task = asyncio.create_task(adapter.run())
    waiter = asyncio.create_task(done.wait())
    finished, _ = await asyncio.wait({task, waiter}, timeout=timeout, return_when="FIRST_COMPLETED")
    task.cancel()
    waiter.cancel()
    assert finished, "adapter did not get there in time"


def _adapter(
    botapi: BotApiStandIn, client: httpx.AsyncClient, service: FakeService
) -> TelegramAdapter:
    bot = BotApi(botapi.base_url, BOT_TOKEN, client)
    return TelegramAdapter(bot, service, ALLOWED, poll_timeout=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "description", "retry_after", "logged"),
    [
        (429, "Too Many Requests: retry after 1", 1, "rate limit: retrying in 1 s"),
        (409, "Conflict: terminated by other getUpdates request", None, "conflict (409)"),
        (502, "Bad Gateway", None, "failed with 502"),
    ],
)
def test_transient_bot_api_errors_are_retried(
    botapi: BotApiStandIn,
    caplog: pytest.LogCaptureFixture,
    code: int,
    description: str,
    retry_after: int | None,
    logged: str,
) -> None:
    botapi.fail_next(code, description, retry_after)
    botapi.push_text(ALLOWED, "hello")
    service = FakeService()

    async def scenario() -> None:
        async with httpx.AsyncClient() as client:
            adapter = _adapter(botapi, client, service)
            done = asyncio.Event()

            async def watch() -> None:
                while not botapi.replies_to(ALLOWED):
                    await asyncio.sleep(0.05)
                done.set()

            watcher = asyncio.create_task(watch())
            await _run_until(adapter, done, timeout=15)
            watcher.cancel()

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    assert botapi.replies_to(ALLOWED) == ["echo: hello"]
    assert logged in caplog.text
    assert BOT_TOKEN not in caplog.text


def test_a_rejected_token_stops_the_adapter_with_one_error(
    botapi: BotApiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient() as client:
            bot = BotApi(botapi.base_url, "999:wrong-token", client)
            adapter = TelegramAdapter(bot, FakeService(), ALLOWED, poll_timeout=1)  # type: ignore[arg-type]
            await asyncio.wait_for(adapter.run(), timeout=10)

    with caplog.at_level(logging.ERROR):
        asyncio.run(scenario())
    assert "bot token was rejected (401)" in caplog.text
    assert "wrong-token" not in caplog.text


def test_an_update_is_confirmed_only_after_it_was_answered(botapi: BotApiStandIn) -> None:
    botapi.push_text(ALLOWED, "first")

    class Failing(FakeService):
        async def interact(self, message: IncomingMessage) -> str:
            raise httpx.ConnectError("service down")

    async def scenario() -> None:
        async with httpx.AsyncClient() as client:
            failing = _adapter(botapi, client, Failing())
            with pytest.raises(httpx.ConnectError):
                await failing.poll_once()
            working = _adapter(botapi, client, FakeService())
            working.offset = failing.offset
            assert await working.poll_once() == 1

    asyncio.run(scenario())
    assert botapi.replies_to(ALLOWED) == ["echo: first"]
