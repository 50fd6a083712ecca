"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_TEXT = 4000


class IngestMessage(BaseModel):
    """A message to record."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_TEXT)
    source: str = Field(default="api", min_length=1, max_length=64, pattern=r"^[a-z0-9_.-]+$")
    chat_id: str | None = Field(default=None, max_length=64)


class Ingested(BaseModel):
    """The event a message became, and what was extracted from it."""

    event_id: str
    todos: list[str]
    notes: list[str]


class TelegramInteraction(BaseModel):
    """One chat message forwarded by the Telegram adapter."""

    model_config = ConfigDict(extra="ignore")

    chat_id: int | str
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    message_id: int | None = None


class InteractionReply(BaseModel):
    """The text to send back to the chat."""

    reply: str


class TodoOut(BaseModel):
    """A todo."""

    number: int
    text: str
    created_at: str
    done: bool
    completed_at: str | None


class NoteOut(BaseModel):
    """A note."""

    number: int
    text: str
    created_at: str
