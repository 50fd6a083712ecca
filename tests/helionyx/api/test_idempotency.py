"""Idempotency-Key on the two write endpoints (IETF httpapi draft semantics), in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helionyx.api import create_app
from helionyx.domain.errors import IdempotencyInFlight
from helionyx.domain.idempotency import Claim, IdempotencyIndex
from helionyx.runtime import open_runtime
from tests.helionyx.servicekit import in_process_settings

TOKEN = "api-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def serve(data: Path) -> tuple[TestClient, object]:
    settings = in_process_settings(data, TOKEN)
    runtime = open_runtime(settings)
    return TestClient(create_app(settings, runtime.assistant)), runtime


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    test_client, runtime = serve(tmp_path)
    with test_client:
        yield test_client
    runtime.close()  # type: ignore[attr-defined]


def ingest(client: TestClient, text: str, key: str | bytes | None) -> tuple[int, dict[str, object]]:
    headers: dict[str, str | bytes] = {**AUTH}
    if key is not None:
        headers["Idempotency-Key"] = key
    response = client.post("/api/v1/ingest/message", headers=headers, json={"text": text})
    return response.status_code, response.json()


def total(client: TestClient) -> int:
    return int(client.get("/api/v1/state", headers=AUTH).json()["events"]["total"])


def test_a_retry_with_the_same_key_gets_the_first_answer_and_stores_nothing(
    client: TestClient,
) -> None:
    first = ingest(client, "todo: pay the rent", '"rent-1"')
    assert first[0] == 201
    stored = total(client)
    assert ingest(client, "todo: pay the rent", '"rent-1"') == first
    assert total(client) == stored
    assert [t["text"] for t in client.get("/api/v1/todos", headers=AUTH).json()] == ["pay the rent"]


def test_the_same_key_with_another_body_is_refused_with_422(client: TestClient) -> None:
    assert ingest(client, "todo: one", '"k"')[0] == 201
    code, body = ingest(client, "todo: two", '"k"')
    assert code == 422 and "already used for a different request" in str(body["detail"])
    assert total(client) == 2


def test_a_key_is_scoped_to_its_endpoint(client: TestClient) -> None:
    assert ingest(client, "hello", '"shared"')[0] == 201
    other = client.post(
        "/api/v1/interactions/telegram",
        headers={**AUTH, "Idempotency-Key": '"shared"'},
        json={"chat_id": 1, "text": "hello"},
    )
    assert other.status_code == 422


@pytest.mark.parametrize(
    "key", ['""', '"unterminated', "has space", "é".encode(), '"' + "k" * 256 + '"']
)
def test_a_malformed_key_is_a_400_that_says_how(client: TestClient, key: str | bytes) -> None:
    code, body = ingest(client, "hello", key)
    assert code == 400 and "Idempotency-Key must be" in str(body["detail"])
    assert total(client) == 0


def test_keys_survive_a_restart(tmp_path: Path) -> None:
    first_client, first = serve(tmp_path)
    with first_client:
        answer = ingest(first_client, "note: the lease ends in May", "lease")
    first.close()  # type: ignore[attr-defined]
    again_client, again = serve(tmp_path)
    with again_client:
        assert ingest(again_client, "note: the lease ends in May", "lease") == answer
        assert total(again_client) == 2
    again.close()  # type: ignore[attr-defined]


def test_telegram_interactions_replay_their_reply(client: TestClient) -> None:
    def send() -> tuple[int, object]:
        response = client.post(
            "/api/v1/interactions/telegram",
            headers={**AUTH, "Idempotency-Key": '"telegram-7"'},
            json={"chat_id": 4242, "text": "todo: call mum\nnote: birthday on Friday"},
        )
        return response.status_code, response.json()

    first = send()
    assert first == (200, {"reply": "Captured. 1 todo(s) added. 1 note(s) added."})
    assert send() == first
    assert total(client) == 3


def test_a_key_whose_first_request_is_still_running_is_refused() -> None:
    index = IdempotencyIndex()
    claim = Claim("busy", "fingerprint")
    with index.claimed(claim) as stored:
        assert stored is None
        with pytest.raises(IdempotencyInFlight), index.claimed(claim):
            pass
    with index.claimed(claim) as again:
        assert again is None, "released when the first request ended without storing"
