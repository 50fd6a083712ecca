"""HTTP at the edges (issue #25, finding 8): Allow on every 405, HEAD wherever GET, the
Idempotency-Key documented as it is parsed, one key per request, a stalled body."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helionyx.api.keys import KEY_SCHEMA, parse_key
from tests.helionyx.servicekit import in_process_client

TOKEN = "edges-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with in_process_client(tmp_path, TOKEN) as test_client:
        yield test_client


def every_route(client: TestClient) -> dict[str, set[str]]:
    schema = client.get("/openapi.json").json()
    return {path: {m.upper() for m in methods} for path, methods in schema["paths"].items()}


def test_every_405_names_the_methods_allowed(client: TestClient) -> None:
    routes = every_route(client)
    assert len(routes) >= 8
    for path, methods in routes.items():
        concrete = path.replace("{number}", "1")
        wrong = "DELETE" if "DELETE" not in methods else "PUT"
        answer = client.request(wrong, concrete, headers=AUTH)
        assert answer.status_code == 405, (path, answer.status_code)
        allowed = {m.strip() for m in answer.headers.get("allow", "").split(",")}
        assert methods <= allowed, (path, answer.headers.get("allow"))


def test_head_works_wherever_get_does(client: TestClient) -> None:
    for path, methods in every_route(client).items():
        if "GET" not in methods:
            continue
        got = client.get(path, headers=AUTH)
        head = client.head(path, headers=AUTH)
        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path


def test_the_schema_documents_what_the_key_parser_accepts(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/api/v1/ingest/message"]["post"]
    [header] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    schema = header["schema"]
    assert schema["maxLength"] == KEY_SCHEMA["maxLength"] and schema["minLength"] == 1
    pattern = re.compile(str(schema["pattern"]))
    for key in ['"8e03978e-40d5"', "bare-token", '"with space"', '"q\\"uote"']:
        assert parse_key(key) is not None and pattern.match(key), key
    for bad in ['""', "has space", '"open']:
        assert not pattern.match(bad), bad


def test_two_keys_in_one_request_are_refused(client: TestClient) -> None:
    answer = client.post(
        "/api/v1/ingest/message",
        headers=[*AUTH.items(), ("Idempotency-Key", '"a"'), ("Idempotency-Key", '"b"')],
        json={"text": "hello"},
    )
    assert answer.status_code == 400
    assert answer.json()["detail"] == "send one Idempotency-Key header, not two"
    state = client.get("/api/v1/state", headers=AUTH).json()
    assert state["events"]["total"] == 0
