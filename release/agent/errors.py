"""The agent's one exception: a refusal or failure reported back to the operator as one line.

    AgentError       raised by any command; the serve loop answers `{"ok": false, "error": …}`
    WatchCut         the operator ended a watch early (never leaves go_live)
    MalformedSums    a SHA256SUMS line that is not `<sha256>  <path>` (a ValueError; the
                     operator side turns it into ArtifactError)

OS and subprocess errors of a command are answered the same way (see `serve.handle`).
"""

from __future__ import annotations


class AgentError(Exception):
    """A refusal or failure reported back to the operator as one line."""


class MalformedSums(ValueError):
    """A SHA256SUMS line that is not `<64 hex digits>  <path>`."""

    def __init__(self, number: int) -> None:
        super().__init__(f"SHA256SUMS line {number} is malformed")
        self.number = number


class WatchCut(Exception):
    """The operator asked to end the watch after `seconds`; the release stays."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"watch cut short after {seconds:.0f} s")
        self.seconds = seconds
