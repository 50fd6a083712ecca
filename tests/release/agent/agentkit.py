"""Calling the real agent's handlers on a pretend host, one request at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from release.agent.protocol import Answer, Message, Request, Target
from release.agent.serve import handle
from tests.release.inprocess import FakeSystem

A = TypeVar("A")


def target(root: Path, env: str = "dev") -> Target:
    return {
        "env": env,
        "base_dir": str(root / "opt" / "helionyx" / env),
        "data_dir": str(root / "var" / "lib" / "helionyx" / env),
        "config_file": str(root / "etc" / "helionyx" / f"{env}.env"),
        "unit": f"helionyx-{env}",
        "port": 8000,
    }


def send(
    system: FakeSystem, request: Request[Any], where: Target | None = None, **extra: Any
) -> Answer:
    """One request line through the agent's `handle`, as the serve loop would pass it."""
    message: Message = {
        "command": request.command,
        "target": where or target(system.root),
        "request": request.body,
    }
    message.update(extra)  # type: ignore[typeddict-item]
    return handle(message, system)


def ask(system: FakeSystem, request: Request[A], where: Target | None = None) -> A:
    """The answer to a request that must succeed."""
    answer = send(system, request, where)
    assert answer["ok"], answer
    result: A = answer["result"]
    return result
