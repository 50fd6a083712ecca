"""The HTTP adapter in-process: auth, validation and limits."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helionyx.api import create_app
from helionyx.runtime import open_runtime
from tests.helionyx.servicekit import in_process_settings

TOKEN = "api-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROTECTED = [
    ("GET", "/api/v1/state"),
    ("POST", "/api/v1/ingest/message"),
    ("GET", "/api/v1/todos"),
    ("POST", "/api/v1/todos/1/complete"),
    ("GET", "/api/v1/notes"),
    ("POST", "/api/v1/interactions/telegram"),
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = in_process_settings(tmp_path, TOKEN, MAX_REQUEST_BYTES="2048")
    runtime = open_runtime(settings)
    with TestClient(create_app(settings, runtime.assistant)) as test_client:
        yield test_client
    runtime.close()


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic abc", "Bearer "])
def test_every_non_health_endpoint_refuses_a_missing_or_wrong_token(
    client: TestClient, method: str, path: str, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.request(method, path, headers=headers, json={"text": "x", "chat_id": 1})
    assert response.status_code == 401
    assert response.json() == {"detail": "missing or wrong bearer token"}


def test_health_needs_no_token_and_names_env_version_and_commit(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "healthy"
    assert body["environment"] == "dev"
    assert set(body) == {"status", "environment", "version", "commit"}
    assert client.get("/health/ready").status_code == 200


def test_ingest_returns_201_with_the_event_id_and_shows_up_in_lists(client: TestClient) -> None:
    response = client.post(
        "/api/v1/ingest/message", headers=AUTH, json={"text": "todo: pay rent\nnote: lease ends"}
    )
    assert response.status_code == 201
    event_id = response.json()["event_id"]
    state = client.get("/api/v1/state", headers=AUTH).json()
    assert state["events"]["total"] == 3
    assert state["projections"]["current"] is True
    assert state["last_event"]["event_type"] == "NoteCaptured"
    assert [t["text"] for t in client.get("/api/v1/todos", headers=AUTH).json()] == ["pay rent"]
    assert [n["text"] for n in client.get("/api/v1/notes", headers=AUTH).json()] == ["lease ends"]
    assert len(event_id) == 36
    done = client.post("/api/v1/todos/1/complete", headers=AUTH)
    assert done.json()["done"] is True
    assert client.post("/api/v1/todos/5/complete", headers=AUTH).status_code == 404
    # Beyond what SQLite can hold (the fuzz found this answering 500): still just "no such todo".
    assert client.post(f"/api/v1/todos/{2**64}/complete", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"text": ""}',
        b'{"text": 5}',
        b'{"text": "ok", "unknown": 1}',
        b'{"text": "ok", "source": "Has Spaces"}',
        b"\xff\xfe",
    ],
)
def test_malformed_bodies_get_a_json_4xx(client: TestClient, body: bytes) -> None:
    response = client.post(
        "/api/v1/ingest/message",
        headers={**AUTH, "content-type": "application/json"},
        content=body,
    )
    assert 400 <= response.status_code < 500
    assert "detail" in response.json()


def test_oversized_bodies_are_refused_with_413(client: TestClient) -> None:
    big = {"text": "x" * 3000}
    response = client.post("/api/v1/ingest/message", headers=AUTH, json=big)
    assert response.status_code == 413
    assert "larger than 2048" in response.json()["detail"]

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}'

    streamed = client.post(
        "/api/v1/ingest/message",
        headers={**AUTH, "content-type": "application/json"},
        content=chunks(),
    )
    assert streamed.status_code == 413


def test_the_interaction_endpoint_answers_like_the_chat(client: TestClient) -> None:
    reply = client.post(
        "/api/v1/interactions/telegram", headers=AUTH, json={"chat_id": 42, "text": "todo: milk"}
    )
    assert reply.json() == {"reply": "Captured. 1 todo(s) added."}
    listing = client.post(
        "/api/v1/interactions/telegram", headers=AUTH, json={"chat_id": 42, "text": "/todos"}
    )
    assert listing.json() == {"reply": "Open todos:\n1. milk"}
