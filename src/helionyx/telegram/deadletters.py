"""Telegram updates the adapter gave up on, one JSON line each, beside the event log.

A record says which update, when and why: never the message text or any secret. The operator
finds the message itself in the chat (or, when it was stored, in the event log).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from helionyx.domain.events import utc_now
from helionyx.telegram.botapi import Update

log = logging.getLogger(__name__)

DEAD_LETTERS = "telegram-dead-letters.jsonl"


class DeadLetters:
    """Appends to one dead-letter file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, update: Update, reason: str, attempts: int) -> None:
        """Append one record durably; a failure to write is logged, never raised."""
        line = json.dumps(
            {
                "at": utc_now().isoformat().replace("+00:00", "Z"),
                "update_id": update.update_id,
                # An update too malformed to say which chat it came from has none here.
                "chat_id": getattr(update, "chat_id", None),
                "message_id": getattr(update, "message_id", None),
                "reason": reason,
                "attempts": attempts,
            },
            sort_keys=True,
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, (line + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("telegram: cannot record dead letter in %s: %s: %s", self.path, exc, line)

    def read(self) -> list[dict[str, object]]:
        """Every record so far (for the operator and tests)."""
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]
