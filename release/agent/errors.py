"""The agent's one exception: a refusal or failure reported back to the operator as one line.

    AgentError  - raised by any command; the serve loop answers `{"ok": false, "error": …}`

OS and subprocess errors of a command are answered the same way (see `serve.handle`).
"""

from __future__ import annotations


class AgentError(Exception):
    """A refusal or failure reported back to the operator as one line."""
