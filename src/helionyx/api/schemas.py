"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

MAX_TEXT = 4000
#: Telegram chat ids have at most 52 significant bits.
CHAT_ID_BOUND = 2**52


def _well_formed(text: str) -> str:
    # JSON may spell a lone surrogate ("\ud800"): a str in Python, but not storable as UTF-8.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone surrogate, which is not valid Unicode") from None
    return text


Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_well_formed)]
ChatRef = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_well_formed)]
ChatNumber = Annotated[int, Field(ge=-CHAT_ID_BOUND, le=CHAT_ID_BOUND)]


class Problem(BaseModel):
    """Why a request was refused."""

    detail: str | list[dict[str, object]]


class IngestMessage(BaseModel):
    """A message to record."""

    model_config = ConfigDict(extra="forbid")

    text: Text
    source: str = Field(default="api", min_length=1, max_length=64, pattern=r"^[a-z0-9_.-]+$")
    chat_id: ChatRef | None = None


class Ingested(BaseModel):
    """The event a message became, and what was extracted from it."""

    event_id: str
    todos: list[str]
    notes: list[str]


class TelegramInteraction(BaseModel):
    """One chat message forwarded by the Telegram adapter."""

    model_config = ConfigDict(extra="ignore")

    chat_id: ChatNumber | ChatRef
    text: Text
    message_id: ChatNumber | None = None
    #: Sent by the adapter instead of an Idempotency-Key: the update is its bot's key.
    update_id: Annotated[int, Field(ge=0, le=2**53)] | None = None
    bot_id: Annotated[int, Field(ge=1, le=2**53)] | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> TelegramInteraction:
        if (self.update_id is None) != (self.bot_id is None):
            raise ValueError("update_id and bot_id go together: send both or neither")
        return self


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
