"""A bounded, schema-driven fuzz of the HTTP API with every schemathesis check (as
`--checks all`): no 5xx, every status and body as documented, none without the token past
authentication."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CHECKS

from helionyx.api import create_app
from helionyx.runtime import open_runtime
from tests.helionyx.servicekit import in_process_settings

TOKEN = "fuzz-test-token-0123456789"
#: Every built-in check, as `schemathesis run --checks all` selects them.
ALL_CHECKS: list[Any] = list(CHECKS.get_all())
#: Examples per operation and token setting: bounded, a few seconds in all.
EXAMPLES = 40


@pytest.fixture
def api_schema(tmp_path: Path) -> Iterator[schemathesis.BaseSchema]:
    """The app's own OpenAPI schema, with the app behind it in-process (ASGI, no sockets)."""
    config = in_process_settings(tmp_path, TOKEN)
    runtime = open_runtime(config)
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app(config, runtime.assistant))
    runtime.close()


@pytest.mark.parametrize("authorized", [True, False], ids=["with-token", "without-token"])
def test_no_generated_request_makes_the_api_fail(
    api_schema: schemathesis.BaseSchema, authorized: bool
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}" if authorized else ""}
    operations = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 8, "the schema lists every endpoint"
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case[Any]) -> None:
            # A fresh key per case: a generated one reused with another body is rightly a 422,
            # which no single-request check can know (tests/helionyx/api/test_idempotency.py).
            keyed = {**headers, "Idempotency-Key": f'"{uuid.uuid4()}"'}
            response = case.call_and_validate(headers=keyed, checks=ALL_CHECKS)
            where = (case.method, case.formatted_path, response.text[:300])
            assert response.status_code < 500, where
            if not authorized and case.path.startswith("/api/"):
                assert response.status_code == 401, where

        check()
