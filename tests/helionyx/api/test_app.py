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
    assert set(body) == {"status", "environment", "version", "commit", "server_errors"}
    assert body["server_errors"] == 0
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


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"text": "\\ud800"}', "text"),
        (b'{"text": NaN}', "text"),
        (b'{"text": "ok", "chat_id": "\\udfff"}', "chat_id"),
    ],
    ids=["lone-surrogate", "nan", "surrogate-chat"],
)
def test_unencodable_input_is_a_422_that_does_not_echo_it(
    client: TestClient, caplog: pytest.LogCaptureFixture, body: bytes, where: str
) -> None:
    response = client.post(
        "/api/v1/ingest/message", headers={**AUTH, "content-type": "application/json"}, content=body
    )
    assert response.status_code == 422
    assert where in response.json()["detail"][0]["loc"]
    assert "input" not in response.json()["detail"][0]
    assert "Traceback" not in caplog.text and "ud800" not in caplog.text


@pytest.mark.parametrize("body", [b"{not json", b'{"text": 5}', b"\xff\xfe"])
def test_without_the_token_a_bad_body_is_401_not_a_parser_error(
    client: TestClient, body: bytes
) -> None:
    for path in ("/api/v1/ingest/message", "/api/v1/interactions/telegram"):
        response = client.post(path, headers={"content-type": "application/json"}, content=body)
        assert response.status_code == 401, path
        assert response.json() == {"detail": "missing or wrong bearer token"}


def test_chat_ids_are_bounded(client: TestClient) -> None:
    for chat_id in ("9" * 60_000, 2**60, "x" * 65):
        response = client.post(
            "/api/v1/interactions/telegram", headers=AUTH, json={"chat_id": chat_id, "text": "hi"}
        )
        assert response.status_code in (413, 422), chat_id
    assert client.get("/api/v1/state", headers=AUTH).json()["events"]["total"] == 0


def test_done_with_a_non_ascii_digit_is_the_usage_reply(client: TestClient) -> None:
    reply = client.post(
        "/api/v1/interactions/telegram", headers=AUTH, json={"chat_id": 42, "text": "/done ²"}
    )
    assert reply.status_code == 200
    assert reply.json()["reply"].startswith("Usage: /done N")


def test_every_status_the_api_answers_is_documented(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    ingest = paths["/api/v1/ingest/message"]["post"]["responses"]
    assert {"201", "400", "401", "409", "413", "422", "503"} <= set(ingest)
    assert {"401", "404", "503"} <= set(
        paths["/api/v1/todos/{number}/complete"]["post"]["responses"]
    )
    assert "503" in paths["/health/ready"]["get"]["responses"]
