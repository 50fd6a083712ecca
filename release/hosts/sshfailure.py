"""How a failed SSH connection is told to the operator, whichever client ran into it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from release.errors import ConnectionFailed
from release.hosts.environments import Environment

Why = Literal["key changed", "key unknown", "identity open", "identity refused", "unreachable"]

_TEXT: dict[Why, tuple[str, str]] = {
    "key changed": (
        "the host key of {where} does not match {known_hosts}",
        "if the host was really reinstalled, update known_hosts; otherwise stop",
    ),
    "key unknown": (
        "the host key of {where} is not in {known_hosts}",
        "add the host's key to known_hosts (unknown keys are never accepted)",
    ),
    "identity open": (
        "the SSH key {key} is readable by others, so ssh will not use it",
        "chmod 600 {key}",
    ),
    "identity refused": ("{where} refused the SSH key", "check DEPLOY_SSH_KEY"),
    "unreachable": (
        "cannot reach {where} ({detail})",
        "check DEPLOY_HOST/host in the environment file and that sshd runs",
    ),
}


def connect_failure(
    env: Environment, known_hosts: str | Path, why: Why | None, detail: str = ""
) -> ConnectionFailed:
    """One line saying why `env`'s host could not be reached (`why` None: ssh's own words)."""
    where = f"{env.ssh_user}@{env.host}:{env.ssh_port}"
    if why is None:
        reason = detail or "no reason given"
        return ConnectionFailed(f"SSH to {where} failed: {reason}", host=env.host)
    message, hint = _TEXT[why]
    fields = {"where": where, "known_hosts": known_hosts, "key": env.ssh_key, "detail": detail}
    return ConnectionFailed(message.format(**fields), hint=hint.format(**fields), host=env.host)
