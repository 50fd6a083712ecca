"""Turning a message into todos and notes.

The rule-based extractor is deterministic. An LLM-backed one can implement the same protocol;
whatever it extracts is recorded as events, so rebuilding projections never calls it again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

_TODO_PATTERNS = (
    re.compile(r"^\s*(?:todo|to do|task)\s*[:\-]\s*(?P<text>.+)$", re.IGNORECASE),
    re.compile(r"^\s*[-*]\s*\[\s?\]\s*(?P<text>.+)$"),
    re.compile(r"^\s*(?:remind me to|i need to|don't forget to)\s+(?P<text>.+)$", re.IGNORECASE),
)
_NOTE_PATTERNS = (re.compile(r"^\s*(?:note|idea)\s*[:\-]\s*(?P<text>.+)$", re.IGNORECASE),)


@dataclass(frozen=True)
class Extraction:
    """What one message yielded."""

    todos: tuple[str, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = field(default_factory=tuple)


class Extractor(Protocol):
    """Anything that can read todos and notes out of a message."""

    def extract(self, text: str) -> Extraction:
        """Return the todos and notes found in `text`."""
        ...


class RuleBasedExtractor:
    """Line-oriented rules: `todo: …`, `- [ ] …`, `remind me to …`, `note: …`."""

    def extract(self, text: str) -> Extraction:
        """Return the todos and notes found in `text`, in the order they appear."""
        todos: list[str] = []
        notes: list[str] = []
        for line in text.splitlines():
            if (found := _first_match(_TODO_PATTERNS, line)) is not None:
                todos.append(found)
            elif (found := _first_match(_NOTE_PATTERNS, line)) is not None:
                notes.append(found)
        return Extraction(tuple(todos), tuple(notes))


def _first_match(patterns: tuple[re.Pattern[str], ...], line: str) -> str | None:
    for pattern in patterns:
        match = pattern.match(line)
        if match:
            text = match.group("text").strip().rstrip(".")
            if text:
                return text
    return None
