"""The count of 5xx answers /health reports (what a deploy's watch reads)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from helionyx.api.errorcount import ErrorCounter, ServerErrors


def test_5xx_answers_and_unhandled_exceptions_are_counted_nothing_else() -> None:
    def fine(_: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    def unavailable(_: object) -> PlainTextResponse:
        return PlainTextResponse("busy", status_code=503)

    def broken(_: object) -> PlainTextResponse:
        raise RuntimeError("boom")

    app = Starlette(
        routes=[Route("/fine", fine), Route("/busy", unavailable), Route("/broken", broken)]
    )
    counter = ErrorCounter()
    app.add_middleware(ServerErrors, counter=counter)
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/fine").status_code == 200
    assert client.get("/missing").status_code == 404
    assert counter.count == 0
    assert client.get("/busy").status_code == 503
    assert client.get("/broken").status_code == 500
    assert counter.count == 2


def test_a_readiness_probes_503_is_its_verdict_not_a_server_error() -> None:
    def not_ready(_: object) -> PlainTextResponse:
        return PlainTextResponse("catching up", status_code=503)

    def crashed(_: object) -> PlainTextResponse:
        return PlainTextResponse("boom", status_code=500)

    app = Starlette(routes=[Route("/health/ready", not_ready), Route("/health/other", crashed)])
    counter = ErrorCounter()
    app.add_middleware(ServerErrors, counter=counter)
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/health/ready").status_code == 503
    assert counter.count == 0
    assert client.get("/health/other").status_code == 500
    assert counter.count == 1
