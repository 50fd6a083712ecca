"""Routes translate HTTP to domain calls and back, nothing more."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from helionyx import __commit__, __version__
from helionyx.api.limits import BodySizeLimit
from helionyx.api.schemas import (
    Ingested,
    IngestMessage,
    InteractionReply,
    NoteOut,
    TelegramInteraction,
    TodoOut,
)
from helionyx.config import Settings
from helionyx.domain.assistant import Assistant
from helionyx.domain.errors import UnknownTodo
from helionyx.domain.projections import Todo

_bearer = HTTPBearer(auto_error=False)


def create_app(
    settings: Settings,
    assistant: Assistant,
    background: Callable[[], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """Build the ASGI app; `background` runs beside it (the Telegram adapter) if given."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if background is None:
            yield
            return
        async with background():
            yield

    app = FastAPI(
        title="Helionyx",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    expected = settings.helionyx_api_token.get_secret_value().encode()

    def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        given = credentials.credentials.encode() if credentials else b""
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    authed = [Depends(require_token)]

    @app.get("/health")
    def health() -> dict[str, str]:
        return {
            "status": "healthy",
            "environment": settings.environment,
            "version": __version__,
            "commit": __commit__,
        }

    @app.get("/health/ready")
    def ready() -> JSONResponse:
        reason = assistant.store.writable()
        applied = assistant.projections.applied
        if reason is None and applied != assistant.store.count:
            reason = f"projections applied {applied} of {assistant.store.count} events"
        body: dict[str, Any] = {
            "status": "ready" if reason is None else "not_ready",
            "environment": settings.environment,
            "version": __version__,
            "commit": __commit__,
        }
        if reason is not None:
            body["reason"] = reason
        return JSONResponse(body, status_code=200 if reason is None else 503)

    @app.get("/api/v1/state", dependencies=authed)
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

    @app.post("/api/v1/ingest/message", status_code=201, dependencies=authed)
    def ingest(message: IngestMessage) -> Ingested:
        result = assistant.ingest_message(
            message.text, source=message.source, chat_id=message.chat_id
        )
        return Ingested(
            event_id=result.event_id, todos=list(result.todos), notes=list(result.notes)
        )

    @app.get("/api/v1/todos", dependencies=authed)
    def todos(include_done: bool = False) -> list[TodoOut]:
        return [_todo_out(t) for t in assistant.projections.todos(include_done=include_done)]

    @app.post("/api/v1/todos/{number}/complete", dependencies=authed)
    def complete(number: int) -> TodoOut:
        try:
            done = assistant.complete_todo(number)
        except UnknownTodo as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        return _todo_out(done)

    @app.get("/api/v1/notes", dependencies=authed)
    def notes() -> list[NoteOut]:
        return [
            NoteOut(number=n.number, text=n.text, created_at=n.created_at)
            for n in assistant.notes()
        ]

    @app.post("/api/v1/interactions/telegram", dependencies=authed)
    def interaction(message: TelegramInteraction) -> InteractionReply:
        reply = assistant.interact(message.text, chat_id=str(message.chat_id))
        return InteractionReply(reply=reply)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Never leak internals (paths, secrets) in a 500 body; the log has the traceback.
        return JSONResponse({"detail": "internal error"}, status_code=500)

    app.add_middleware(BodySizeLimit, limit=settings.max_request_bytes)
    return app


def _todo_out(todo: Todo) -> TodoOut:
    return TodoOut(
        number=todo.number,
        text=todo.text,
        created_at=todo.created_at,
        done=todo.done,
        completed_at=todo.completed_at,
    )
