"""Routes translate HTTP to domain calls and back, nothing more."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from helionyx import __commit__, __version__
from helionyx.api.errorcount import ErrorCounter, ServerErrors
from helionyx.api.keys import KEY_HEADER_DOC, KEY_SCHEMA, parse_key
from helionyx.api.limits import BodySizeLimit, HeadAsGet
from helionyx.api.schemas import (
    Ingested,
    IngestMessage,
    InteractionReply,
    NoteOut,
    Problem,
    TelegramInteraction,
    TodoOut,
)
from helionyx.config import Settings
from helionyx.domain.assistant import Assistant
from helionyx.domain.errors import (
    IdempotencyConflict,
    IdempotencyInFlight,
    ProjectionsUnavailable,
    StoreUnavailable,
    UnknownTodo,
)
from helionyx.domain.idempotency import Claim, bot_scope, fingerprint
from helionyx.domain.projections import Todo

_bearer = HTTPBearer(auto_error=False)
UNAUTHORIZED = "missing or wrong bearer token"
RETRY_AFTER = "5"


def _one_key(
    request: Request,
    key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description=KEY_HEADER_DOC, json_schema_extra=KEY_SCHEMA),
    ] = None,
) -> str | None:
    """The request's one Idempotency-Key header (two, even equal, are refused)."""
    if len(request.headers.getlist("idempotency-key")) > 1:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "send one Idempotency-Key header, not two")
    return key


IdempotencyKey = Annotated[str | None, Depends(_one_key)]


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


#: Every status a route can answer besides its success, documented in the OpenAPI schema.
AUTHED: dict[int | str, dict[str, Any]] = {401: _problem("missing or wrong bearer token")}
BODY: dict[int | str, dict[str, Any]] = {
    400: _problem("a body that is not JSON, or a malformed Idempotency-Key"),
    413: _problem("a body larger than MAX_REQUEST_BYTES"),
    422: _problem("a body that is not a valid request, or an Idempotency-Key reused for another"),
}
KEYED: dict[int | str, dict[str, Any]] = {
    409: _problem("the first request with this Idempotency-Key is still being processed"),
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: _problem("the event log cannot be written, or the read model cannot follow it, now"),
}


def not_ready(
    assistant: Assistant, checks: Sequence[Callable[[], str | None]], *, catch_up: bool = True
) -> str | None:
    """Why this process is not ready to serve (None: it is). `catch_up=False` while another
    process still writes the read model (a release booting beside the running one)."""
    # Everything acknowledged before this look began must be in the read model; what is
    # appended while it catches up is the next look's (under saturating writes the log
    # always grows while it looks, and comparing with a later count said 503 wrongly).
    acknowledged = assistant.store.count
    reason = assistant.store.writable()
    if catch_up:
        # Catching up here is what repairs a read model that fell behind, without a restart.
        reason = reason or assistant.sync()
        applied = assistant.projections.applied
        if reason is None and applied < acknowledged:
            reason = f"projections reflect {applied} of {acknowledged} events"
    for check in checks:
        reason = reason or check()
    return reason


def create_app(
    settings: Settings,
    assistant: Assistant,
    background: Callable[[], AbstractAsyncContextManager[None]] | None = None,
    checks: Sequence[Callable[[], str | None]] = (),
    handover: Callable[[], dict[str, object]] | None = None,
) -> FastAPI:
    """Build the ASGI app; `background` runs beside it (the Telegram adapter) if given, each
    of `checks` may name a reason readiness fails (the adapter's own state), and `handover`
    says what /health reports of handing the socket to the next release."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if background is None:
            yield
            return
        async with background():
            yield

    errors = ErrorCounter()
    app = FastAPI(
        title="Helionyx",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    expected = settings.helionyx_api_token.get_secret_value().encode()

    def authorized(header: str | None) -> bool:
        scheme, _, given = (header or "").partition(" ")
        token = given.strip().encode() if scheme.lower() == "bearer" else b""
        return hmac.compare_digest(token, expected)

    def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        given = credentials.credentials.encode() if credentials else b""
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"}
            )

    authed = [Depends(require_token)]

    @app.get("/health")
    def health() -> dict[str, object]:
        body: dict[str, object] = {
            "status": "healthy",
            "environment": settings.environment,
            "version": __version__,
            "commit": __commit__,
            # 5xx answers since start: a deploy's watch reads it (docs/DEPLOYMENT.md).
            "server_errors": errors.count,
        }
        if assistant.store.unreadable:
            # Rolled back by force onto a log it cannot wholly read: what it does not show.
            body["unreadable_events"] = assistant.store.unreadable
        said = handover() if handover is not None else None
        if said:
            # The hand-over this process can do, and the one it is doing (helionyx.handover).
            body["handover"] = said
        return body

    @app.get("/health/ready", responses={503: {"description": "not ready, with the reason"}})
    def ready() -> JSONResponse:
        reason = not_ready(assistant, checks)
        body: dict[str, Any] = {
            "status": "ready" if reason is None else "not_ready",
            "environment": settings.environment,
            "version": __version__,
            "commit": __commit__,
        }
        if reason is not None:
            body["reason"] = reason
        return JSONResponse(body, status_code=200 if reason is None else 503)

    @app.get("/api/v1/state", dependencies=authed, responses=AUTHED)
    def state() -> dict[str, Any]:
        summary = assistant.state()
        last = summary.last_event
        return {
            "environment": settings.environment,
            "version": __version__,
            "commit": __commit__,
            "events": {"total": summary.total_events, "by_type": summary.events_by_type},
            "last_event": None
            if last is None
            else {
                "event_id": last.event_id,
                "event_type": last.event_type,
                "occurred_at": last.to_dict()["occurred_at"],
            },
            "projections": {
                "applied": summary.projections_applied,
                "current": summary.projections_current,
            },
        }

    @app.post(
        "/api/v1/ingest/message",
        status_code=201,
        dependencies=authed,
        responses={**AUTHED, **BODY, **KEYED, **UNAVAILABLE},
    )
    def ingest(message: IngestMessage, idempotency_key: IdempotencyKey = None) -> Ingested:
        claim = _claim(idempotency_key, "ingest", message.model_dump())
        result = assistant.ingest_message(
            message.text, source=message.source, chat_id=message.chat_id, claim=claim
        )
        return Ingested(
            event_id=result.event_id, todos=list(result.todos), notes=list(result.notes)
        )

    @app.get("/api/v1/todos", dependencies=authed, responses={**AUTHED, **UNAVAILABLE})
    def todos(include_done: bool = False) -> list[TodoOut]:
        return [_todo_out(t) for t in assistant.todos(include_done=include_done)]

    @app.post(
        "/api/v1/todos/{number}/complete",
        dependencies=authed,
        responses={
            **AUTHED,
            404: _problem("no todo has that number"),
            422: _problem("the number is not an integer"),
            **UNAVAILABLE,
        },
    )
    def complete(number: int) -> TodoOut:
        try:
            done = assistant.complete_todo(number)
        except UnknownTodo as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        return _todo_out(done)

    @app.get("/api/v1/notes", dependencies=authed, responses={**AUTHED, **UNAVAILABLE})
    def notes() -> list[NoteOut]:
        return [
            NoteOut(number=n.number, text=n.text, created_at=n.created_at)
            for n in assistant.notes()
        ]

    @app.post(
        "/api/v1/interactions/telegram",
        dependencies=authed,
        responses={**AUTHED, **BODY, **KEYED, **UNAVAILABLE},
    )
    def interaction(
        message: TelegramInteraction,
        idempotency_key: IdempotencyKey = None,
    ) -> InteractionReply:
        claim = _interaction_claim(idempotency_key, message)
        reply = assistant.interact(message.text, chat_id=str(message.chat_id), claim=claim)
        return InteractionReply(reply=reply.text)

    _answer_errors(app, authorized)
    _guard(app, settings, errors)
    return app


def _guard(app: FastAPI, settings: Settings, errors: ErrorCounter) -> None:
    """The ASGI layers around the routes, innermost first."""
    app.add_middleware(
        BodySizeLimit, limit=settings.max_request_bytes, timeout=settings.request_read_timeout
    )
    app.add_middleware(HeadAsGet)
    # Outermost of ours: it sees every answer, and exceptions on their way to becoming 500s.
    app.add_middleware(ServerErrors, counter=errors)


def _answer_errors(app: FastAPI, authorized: Callable[[str | None], bool]) -> None:
    """Every error becomes one status and one reason, in this one place."""

    def refused(request: Request, code: int, detail: object) -> JSONResponse:
        # Authentication comes first: without the token, say nothing about the body.
        if request.url.path.startswith("/api/") and not authorized(
            request.headers.get("authorization")
        ):
            return JSONResponse(
                {"detail": UNAUTHORIZED}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return JSONResponse({"detail": detail}, status_code=code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Where and why only: echoing the input could leak it, and some (NaN, a lone
        # surrogate) cannot even be encoded into the answer.
        errors = [
            {"loc": [str(p) for p in error["loc"]], "msg": error["msg"], "type": error["type"]}
            for error in exc.errors()
        ]
        return refused(request, 422, errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 401:
            return JSONResponse(
                {"detail": exc.detail}, status_code=401, headers=dict(exc.headers or {})
            )
        answer = refused(request, exc.status_code, exc.detail)
        if answer.status_code == exc.status_code:
            # 405's Allow, and any other header the error carries (RFC 9110 requires Allow).
            answer.headers.update(exc.headers or {})
        return answer

    @app.exception_handler(StoreUnavailable)
    @app.exception_handler(ProjectionsUnavailable)
    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)}, status_code=503, headers={"Retry-After": RETRY_AFTER}
        )

    @app.exception_handler(IdempotencyConflict)
    async def key_reused(request: Request, exc: IdempotencyConflict) -> JSONResponse:
        return refused(request, 422, str(exc))

    @app.exception_handler(IdempotencyInFlight)
    async def key_busy(request: Request, exc: IdempotencyInFlight) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Never leak internals (paths, secrets) in a 500 body; the log has the traceback.
        return JSONResponse({"detail": "internal error"}, status_code=500)


def _claim(header: str | None, endpoint: str, body: dict[str, Any]) -> Claim | None:
    key = parse_key(header)
    return None if key is None else Claim(key, fingerprint(endpoint, body))


def _interaction_claim(header: str | None, message: TelegramInteraction) -> Claim | None:
    """A client's Idempotency-Key, or the adapter's own key space: per bot, by update."""
    body = message.model_dump()
    claim = _claim(header, "telegram", body)
    if message.update_id is None or message.bot_id is None:
        return claim
    if claim is not None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "send either an Idempotency-Key or update_id and bot_id, not both",
        )
    return Claim(str(message.update_id), fingerprint("telegram", body), bot_scope(message.bot_id))


def _todo_out(todo: Todo) -> TodoOut:
    return TodoOut(
        number=todo.number,
        text=todo.text,
        created_at=todo.created_at,
        done=todo.done,
        completed_at=todo.completed_at,
    )
