"""The Telegram adapter against a local Bot API stand-in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helionyx.telegram.adapter import (
    MAX_ATTEMPTS,
    TOO_LONG,
    ServiceFailed,
    ServiceRefused,
    TelegramAdapter,
)
from helionyx.telegram.botapi import BotApi, IncomingMessage
from helionyx.telegram.deadletters import DEAD_LETTERS, DeadLetters
from tests.helionyx.servicekit import free_port, poll, running_service, service_env
from tests.helionyx.telegram.botapi_standin import BotApiStandIn, serving

BOT_TOKEN = "123456:AAtest-bot-token-secret"
ALLOWED = 4242
STRANGER = 777


@pytest.fixture
def botapi() -> Iterator[BotApiStandIn]:
    with serving(BOT_TOKEN) as standin:
        yield standin


@pytest.mark.process
def test_the_allowed_chat_gets_replies_and_other_chats_get_nothing(
    tmp_path: Path, botapi: BotApiStandIn
) -> None:
    with running_service(telegram_env(tmp_path, botapi), tmp_path / "log", tmp_path) as service:
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


@pytest.mark.process
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


class FailingService(FakeService):
    """Fails every call the way a service that is down does."""

    async def interact(self, message: IncomingMessage) -> str:
        self.seen.append(message.text or "")
        raise ServiceFailed("the service answered 503")


class RefusingService(FakeService):
    """Refuses messages over 10 characters, as the service does over its limit."""

    async def interact(self, message: IncomingMessage) -> str:
        if len(message.text or "") > 10:
            raise ServiceRefused(422, [{"loc": ["body", "text"], "type": "string_too_long"}])
        return await super().interact(message)


class LongService(FakeService):
    """Answers with a reply longer than one Telegram message."""

    async def interact(self, message: IncomingMessage) -> str:
        return "\n".join(f"{n}. {'x' * 60}" for n in range(150))


class Sleeps:
    """The adapter's sleep, recorded and instant."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


def _adapter(
    botapi: BotApiStandIn,
    client: httpx.AsyncClient,
    service: FakeService,
    *,
    token: str = BOT_TOKEN,
    dead_letters: DeadLetters | None = None,
    sleeps: Sleeps | None = None,
) -> TelegramAdapter:
    bot = BotApi(botapi.base_url, token, client)
    return TelegramAdapter(
        bot,
        service,  # type: ignore[arg-type]
        ALLOWED,
        poll_timeout=1,
        dead_letters=dead_letters,
        sleep=sleeps or Sleeps(),
    )


def with_adapter(
    botapi: BotApiStandIn, service: FakeService, condition: Callable[[], bool], **options: Any
) -> None:
    async def make_and_run() -> None:
        async with httpx.AsyncClient() as client:
            adapter = _adapter(botapi, client, service, **options)
            task = asyncio.create_task(adapter.run())
            deadline = time.monotonic() + 15
            while not condition() and not task.done():
                assert time.monotonic() < deadline, "the adapter did not get there in time"
                await asyncio.sleep(0.02)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(make_and_run())


@pytest.mark.parametrize(
    ("code", "description", "retry_after", "logged"),
    [
        (429, "Too Many Requests: retry after 1", 1, "rate limit: retrying in 1 s"),
        (409, "Conflict: terminated by other getUpdates request", None, "stop the other poller"),
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
    with caplog.at_level(logging.WARNING):
        with_adapter(botapi, FakeService(), lambda: bool(botapi.replies_to(ALLOWED)))
    assert botapi.replies_to(ALLOWED) == ["echo: hello"]
    assert logged in caplog.text
    assert BOT_TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("999:wrong-token", "Telegram rejected the bot token (401 Unauthorized)"),
        ("not a token", "404 for this bot, as it does for a malformed token"),
    ],
    ids=["wrong", "malformed"],
)
def test_a_rejected_or_malformed_token_stops_the_adapter_with_one_line(
    botapi: BotApiStandIn, caplog: pytest.LogCaptureFixture, token: str, expected: str
) -> None:
    with caplog.at_level(logging.ERROR):
        with_adapter(botapi, FakeService(), lambda: False, token=token)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and expected in errors[0].getMessage()
    assert "wrong-token" not in caplog.text  # and with_adapter returned: the adapter ended


def test_a_webhook_is_named_with_the_fix_and_polling_resumes_once_it_is_gone(
    botapi: BotApiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    botapi.webhook = "https://example.invalid/hook"
    botapi.push_text(ALLOWED, "hello")

    def webhook_reported_then_removed() -> bool:
        if "deleteWebhook" in caplog.text:
            botapi.webhook = ""
        return bool(botapi.replies_to(ALLOWED))

    with caplog.at_level(logging.WARNING):
        with_adapter(botapi, FakeService(), webhook_reported_then_removed)
    assert "webhook is set for this bot" in caplog.text
    assert botapi.replies_to(ALLOWED) == ["echo: hello"]


def test_an_update_is_confirmed_only_after_it_was_answered(botapi: BotApiStandIn) -> None:
    botapi.push_text(ALLOWED, "first")

    async def scenario() -> None:
        async with httpx.AsyncClient() as client:
            failing = _adapter(botapi, client, FailingService())
            with pytest.raises(ServiceFailed):
                await failing.poll_once()
            assert botapi.pending() == [1]
            working = _adapter(botapi, client, FakeService())
            working.offset = failing.offset
            assert await working.poll_once() == 1

    asyncio.run(scenario())
    assert botapi.replies_to(ALLOWED) == ["echo: first"]


def test_a_message_that_keeps_failing_is_dead_lettered_and_the_next_flows(
    botapi: BotApiStandIn, tmp_path: Path
) -> None:
    botapi.push_text(ALLOWED, "poison")
    letters = DeadLetters(tmp_path / "dead.jsonl")
    service = FailingService()
    sleeps = Sleeps()
    with_adapter(
        botapi, service, lambda: botapi.pending() == [], dead_letters=letters, sleeps=sleeps
    )
    assert service.seen == ["poison"] * MAX_ATTEMPTS, "a bounded number of attempts"
    assert sleeps.delays == [1.0, 2.0, 4.0, 8.0], "backing off between them"
    [record] = letters.read()
    assert record["update_id"] == 1 and "503" in str(record["reason"])
    assert "poison" not in letters.path.read_text(), "no message text in the dead letters"
    botapi.push_text(ALLOWED, "next")
    with_adapter(botapi, FakeService(), lambda: bool(botapi.replies_to(ALLOWED)))
    assert botapi.replies_to(ALLOWED) == ["echo: next"]


def test_a_refused_message_gets_a_short_reply_and_is_confirmed(botapi: BotApiStandIn) -> None:
    botapi.push_text(ALLOWED, "a message that is far too long")
    botapi.push_text(ALLOWED, "short")
    with_adapter(botapi, RefusingService(), lambda: botapi.pending() == [])
    assert botapi.replies_to(ALLOWED) == [TOO_LONG, "echo: short"]
    assert botapi.pending() == []


def test_a_reply_over_telegrams_limit_is_split(botapi: BotApiStandIn) -> None:
    botapi.push_text(ALLOWED, "/todos")
    with_adapter(botapi, LongService(), lambda: botapi.pending() == [])
    parts = botapi.replies_to(ALLOWED)
    assert len(parts) == 3 and all(len(p) <= 4096 for p in parts)
    assert "\n".join(parts) == "\n".join(f"{n}. {'x' * 60}" for n in range(150))


@pytest.mark.parametrize(
    ("code", "description"),
    [(403, "Forbidden: bot was blocked by the user"), (400, "Bad Request: chat not found")],
)
def test_a_reply_telegram_refuses_for_good_is_dead_lettered_not_retried(
    botapi: BotApiStandIn, tmp_path: Path, code: int, description: str
) -> None:
    botapi.fail_sending(code, description)
    botapi.push_text(ALLOWED, "hello")
    letters = DeadLetters(tmp_path / "dead.jsonl")
    service = FakeService()
    with_adapter(botapi, service, lambda: botapi.pending() == [], dead_letters=letters)
    assert service.seen == ["hello"]
    assert description in str(letters.read()[0]["reason"])


def telegram_env(tmp_path: Path, botapi: BotApiStandIn) -> dict[str, str]:
    return service_env(
        tmp_path,
        free_port(),
        TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_CHAT_ID=str(ALLOWED),
        TELEGRAM_API_BASE=botapi.base_url,
        TELEGRAM_POLL_TIMEOUT="1",
    )


@pytest.mark.process
def test_failed_replies_never_store_a_message_twice(tmp_path: Path, botapi: BotApiStandIn) -> None:
    botapi.fail_sending(429, "Too Many Requests: retry after 1", 1)
    botapi.fail_sending(500, "Internal Server Error")
    botapi.fail_sending(502, "Bad Gateway")
    with running_service(telegram_env(tmp_path, botapi), tmp_path / "log", tmp_path) as service:
        botapi.push_text(ALLOWED, "todo: pay the rent")
        assert botapi.wait_for_reply(ALLOWED, 1, timeout=30) == ["Captured. 1 todo(s) added."]
        assert botapi.send_calls == 4
        with service.client() as client:
            todos = client.get("/api/v1/todos").json()
            events = client.get("/api/v1/state").json()["events"]["by_type"]
        assert [t["text"] for t in todos] == ["pay the rent"], "stored once, not four times"
        assert events == {"MessageIngested": 1, "TodoCaptured": 1}
        botapi.fail_sending(403, "Forbidden: bot was blocked by the user")
        botapi.push_text(ALLOWED, "todo: water the plants")
        poll(lambda: botapi.pending() == [] or None, 20, "the update to be confirmed")
        with service.client() as client:
            assert len(client.get("/api/v1/todos").json()) == 2
        assert service.stop() == 0
    [letter] = DeadLetters(tmp_path / "events" / DEAD_LETTERS).read()
    assert letter["update_id"] == 2 and "blocked by the user" in str(letter["reason"])


@pytest.mark.process
def test_poison_messages_do_not_wedge_the_chat(tmp_path: Path, botapi: BotApiStandIn) -> None:
    with running_service(telegram_env(tmp_path, botapi), tmp_path / "log", tmp_path) as service:
        with service.client() as client:
            for n in range(80):
                client.post("/api/v1/ingest/message", json={"text": f"todo: {n:02d} " + "y" * 60})
        botapi.push_text(ALLOWED, "x" * 4050)  # Telegram allows 4096; the service takes 4000
        botapi.push_text(ALLOWED, "/done ²")
        botapi.push_text(ALLOWED, "/todos")
        replies = botapi.wait_for_reply(ALLOWED, 4, timeout=30)
        assert replies[0] == TOO_LONG
        assert replies[1].startswith("Usage: /done N")
        listing = replies[2:]
        assert len(listing) == 2 and all(len(part) <= 4096 for part in listing)
        assert listing[0].startswith("Open todos:\n1. 00 ") and listing[1].endswith(
            "80. 79 " + "y" * 60
        )
        assert service.stop() == 0
    assert "Traceback" not in service.log()
