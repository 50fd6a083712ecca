"""What every host command needs, carried in one frozen value instead of a dozen keywords.

The CLI builds one `Context` per run; tests build theirs with an in-process transport and a fake
clock. A command that acts on a second env (promote's source, restore's donor, the staging gate's
required env) derives it with `ctx.on(env)` or `ctx.peer(name)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from release.agent.protocol import Progress
from release.clock import Clock, SystemClock
from release.hosts.environments import Environment, load
from release.hosts.remote import Remote, SshRemote
from release.progress import NoProgress, Progressable

#: How a command reaches its host: SSH, or in tests a transport of their own.
RemoteFactory = Callable[[Environment], Remote]


class Reporter(Protocol):
    """Where progress goes (the CLI prints it; tests may collect it)."""

    def headline(self, message: str) -> None:
        """What the operation does, once its target is known (after the input was checked)."""

    def step(self, name: str, seconds: float, detail: str = "") -> None:
        """A step finished."""

    def note(self, message: str) -> None:
        """Something the operator should know."""

    def progress(self, progress: Progress) -> None:
        """How far a long step on the host has got (the watch counting down)."""


class QuietReporter:
    """A reporter that tells nobody (reads that report nothing along the way)."""

    def headline(self, message: str) -> None:
        """Nothing."""

    def step(self, name: str, seconds: float, detail: str = "") -> None:
        """Nothing."""

    def note(self, message: str) -> None:
        """Nothing."""

    def progress(self, progress: Progress) -> None:
        """Nothing."""


@dataclass(frozen=True)
class Options:
    """What the operator asked for on the command line, as every command reads it."""

    #: Seconds to wait for a lock another operation holds (WAIT=), 0 to refuse at once.
    wait: float = 0.0
    #: MIGRATE=1: build a new read model beside the one in use when the release needs one.
    migrate: bool = False
    #: FORCE=1 REASON=…: the reason (recorded); None when not forced.
    forced: str | None = None
    #: APPLY=1: apply a changed host set-up (units, listen address).
    apply_units: bool = False


@dataclass(frozen=True)
class Context:
    """The project, the env a command acts on, how to reach its host and where progress goes."""

    root: Path
    env: Environment
    reporter: Reporter = field(default_factory=QuietReporter)
    remote_factory: RemoteFactory = SshRemote
    progress: Progressable = field(default_factory=NoProgress)
    clock: Clock = field(default_factory=SystemClock)
    options: Options = field(default_factory=Options)
    #: How another env is found by name (the project's env files unless a test says otherwise).
    environments: Callable[[str], Environment] | None = None

    def on(self, env: Environment) -> Context:
        """The same run, acting on another env."""
        return replace(self, env=env)

    def peer(self, name: str) -> Environment:
        """Another env of this project, by name."""
        return self.environments(name) if self.environments else load(self.root, name)

    def remote(self) -> Remote:
        """A new connection to this env's host."""
        return self.remote_factory(self.env)
