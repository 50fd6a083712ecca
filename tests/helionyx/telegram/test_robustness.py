"""The adapter on a bad day (issue #25, findings 1-3): malformed updates, a crash, a flaky
sendMessage, and update keys that never meet an API client's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from helionyx.api import create_app
from helionyx.domain import events as ev
from helionyx.domain.events import Event
from helionyx.domain.idempotency import Claim, IdempotencyIndex, bot_scope
from helionyx.runtime import open_runtime
from helionyx.telegram.adapter import TelegramAdapter
from helionyx.telegram.botapi import BotApi, IncomingMessage
from helionyx.telegram.deadletters import DeadLetters
from helionyx.telegram.supervisor import Supervisor
from tests.helionyx.servicekit import in_process_client, in_process_settings
from tests.helionyx.telegram.botapi_standin import BotApiStandIn, serving
from tests.helionyx.telegram.test_adapter import (
    ALLOWED,
    BOT_TOKEN,
    FakeService,
    RefusingService,
    Sleeps,
    with_adapter,
)

TOKEN = "robustness-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def botapi() -> Iterator[BotApiStandIn]:
    with serving(BOT_TOKEN) as standin:
        yield standin


def message(update_id: int, **fields: Any) -> dict[str, Any]:
    body = {
        "message_id": 50 + update_id,
        "chat": {"id": ALLOWED, "type": "private"},
        "date": 1,
        "text": f"u{update_id}",
    }
    return {"update_id": update_id, "message": {**body, **fields}}


# -- 1. no update stops the adapter -------------------------------------------------------------
def test_malformed_updates_are_dead_lettered_and_the_chat_keeps_flowing(
    botapi: BotApiStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    botapi.push_raw({"update_id": 1, "message": "a string"})
    botapi.push_raw(message(2, chat={"id": "not-a-number"}))
    botapi.push_raw({"update_id": 3, "message": {"chat": {"id": ALLOWED}, "text": "no id"}})
    botapi.push_raw({"update_id": "4", "message": {}})  # no integer update_id: cannot confirm
    botapi.push_raw(message(5, text="\ud800 lone"))
    botapi.push_raw({"update_id": 6, "edited_message": {}})  # another kind: skipped quietly
    botapi.push_raw(message(7, text=None, photo=[{"file_id": "x"}]))
    botapi.push_raw(message(8, text="after"))
    letters = DeadLetters(tmp_path / "dead.jsonl")
    with caplog.at_level(logging.INFO):
        with_adapter(
            botapi,
            FakeService(),
            lambda: "echo: after" in botapi.replies_to(ALLOWED) and botapi.pending() == [],
            dead_letters=letters,
        )
    assert botapi.replies_to(ALLOWED) == ["echo: \ufffd lone", "echo: after"]
    dead = {int(str(r["update_id"])): str(r["reason"]) for r in letters.read()}
    assert sorted(dead) == [1, 2, 3]
    assert "message is not an object" in dead[1] and "chat.id" in dead[2]
    assert "message_id" in dead[3]
    assert "skipped update 6: not a message" in caplog.text
    assert "update 7 has no text" in caplog.text
    assert botapi.pending() == [], "every update confirmed"


def test_a_result_that_is_not_a_list_of_updates_is_backed_off_and_polling_goes_on(
    botapi: BotApiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    botapi.raw_results += [[1], "nonsense"]
    botapi.push_text(ALLOWED, "hello")
    sleeps = Sleeps()
    with caplog.at_level(logging.WARNING):
        with_adapter(botapi, FakeService(), lambda: bool(botapi.replies_to(ALLOWED)), sleeps=sleeps)
    assert botapi.replies_to(ALLOWED) == ["echo: hello"]
    assert "no update in the answer has an update_id" in caplog.text
    assert "the result is not a list of updates" in caplog.text
    assert sleeps.delays == [1.0, 2.0]


class CrashingOnce(FakeService):
    """A service client with a bug that shows once: the adapter's task ends by it."""

    def __init__(self) -> None:
        super().__init__()
        self.crashed = False

    async def interact(self, message: IncomingMessage) -> str:
        if not self.crashed:
            self.crashed = True
            raise KeyError("reply")
        return await super().interact(message)


def test_an_adapter_that_crashes_is_logged_made_unready_and_restarted(
    botapi: BotApiStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    botapi.push_text(ALLOWED, "hello")
    sleeps = Sleeps()
    supervisor = Supervisor(in_process_settings(tmp_path, TOKEN), sleep=sleeps)
    problems: list[str | None] = []

    async def scenario() -> None:
        async with httpx.AsyncClient() as client:
            adapter = TelegramAdapter(
                BotApi(botapi.base_url, BOT_TOKEN, client),
                CrashingOnce(),  # type: ignore[arg-type]
                ALLOWED,
                poll_timeout=1,
                sleep=sleeps,
            )
            task = asyncio.create_task(supervisor.watch(adapter))
            deadline = time.monotonic() + 15
            while not botapi.replies_to(ALLOWED):
                assert time.monotonic() < deadline
                problems.append(supervisor.readiness())
                await asyncio.sleep(0.01)
            # The next poll after the restart clears it.
            while supervisor.readiness() is not None:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    with caplog.at_level(logging.ERROR):
        asyncio.run(scenario())
    assert botapi.replies_to(ALLOWED) == ["echo: hello"]
    assert supervisor.restarts == 1
    assert "the telegram adapter failed (KeyError); restarting it in 1 s" in problems
    assert "ended by an error" in caplog.text and "KeyError" in caplog.text


def test_readiness_says_what_a_check_says(tmp_path: Path) -> None:
    settings = in_process_settings(tmp_path, TOKEN)
    runtime = open_runtime(settings)
    try:
        app = create_app(settings, runtime.assistant, checks=[lambda: "the adapter stopped"])
        with TestClient(app) as client:
            answer = client.get("/health/ready")
        assert answer.status_code == 503 and answer.json()["reason"] == "the adapter stopped"
    finally:
        runtime.close()


# -- 2. back-off is per failing call ------------------------------------------------------------
def test_a_flaky_send_message_costs_a_second_per_failure_not_a_climbing_back_off(
    botapi: BotApiStandIn,
) -> None:
    botapi.fail_every = 10
    for n in range(60):
        botapi.push_text(ALLOWED, f"m{n}")
    sleeps = Sleeps()
    with_adapter(
        botapi, FakeService(), lambda: len(botapi.replies_to(ALLOWED)) == 60, sleeps=sleeps
    )
    assert sorted(set(botapi.replies_to(ALLOWED))) == sorted(f"echo: m{n}" for n in range(60))
    assert sleeps.delays and set(sleeps.delays) == {1.0}, sleeps.delays


# -- 3. keys belong to their caller, for a window ----------------------------------------------
@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with in_process_client(tmp_path, TOKEN) as test_client:
        yield test_client


def from_bot(client: TestClient, bot: int, update: int, text: str) -> int:
    body = {"chat_id": ALLOWED, "text": text, "message_id": 9, "update_id": update, "bot_id": bot}
    return int(client.post("/api/v1/interactions/telegram", headers=AUTH, json=body).status_code)


def stored_texts(client: TestClient) -> int:
    return int(
        client.get("/api/v1/state", headers=AUTH).json()["events"]["by_type"]["MessageIngested"]
    )


def test_an_api_clients_key_never_meets_the_bots_update(client: TestClient) -> None:
    taken = client.post(
        "/api/v1/interactions/telegram",
        headers={**AUTH, "Idempotency-Key": '"telegram-1"'},
        json={"chat_id": 1, "text": "from a script"},
    )
    assert taken.status_code == 200
    assert from_bot(client, 123, 1, "the real update 1") == 200
    assert from_bot(client, 123, 1, "the real update 1") == 200, "a retry"
    assert from_bot(client, 456, 1, "a re-created bot's update 1") == 200
    assert stored_texts(client) == 3


def test_a_request_with_both_a_key_and_an_update_is_refused(client: TestClient) -> None:
    body = {"chat_id": 1, "text": "x", "update_id": 1, "bot_id": 2}
    both = client.post(
        "/api/v1/interactions/telegram",
        headers={**AUTH, "Idempotency-Key": '"k"'},
        json=body,
    )
    assert both.status_code == 400 and "not both" in both.json()["detail"]
    half = client.post(
        "/api/v1/interactions/telegram",
        headers=AUTH,
        json={"chat_id": 1, "text": "x", "update_id": 1},
    )
    assert half.status_code == 422


def test_a_key_is_forgotten_after_its_window() -> None:
    now = [datetime(2026, 12, 4, 12, tzinfo=UTC)]
    index = IdempotencyIndex(window=timedelta(hours=24), clock=lambda: now[0])
    sent = Event(
        ev.MESSAGE_INGESTED,
        {
            "text": "a",
            "idempotency_key": "1",
            "request_fingerprint": "f1",
            "idempotency_scope": bot_scope(7),
        },
        occurred_at=now[0],
    )
    index.note(sent)
    with index.claimed(Claim("1", "f1", bot_scope(7))) as stored:
        assert stored is not None and stored.event_id == sent.event_id
    now[0] += timedelta(hours=25)
    with index.claimed(Claim("1", "f2", bot_scope(7))) as stored:
        assert stored is None, "past the window the key is free again"


def test_a_message_the_service_refuses_is_dead_lettered_and_answered(
    botapi: BotApiStandIn, tmp_path: Path
) -> None:
    botapi.push_text(ALLOWED, "a message that is far too long")
    letters = DeadLetters(tmp_path / "dead.jsonl")
    with_adapter(
        botapi, RefusingService(), lambda: bool(botapi.replies_to(ALLOWED)), dead_letters=letters
    )
    [record] = letters.read()
    assert record["update_id"] == 1 and "the service refused it (422" in str(record["reason"])
