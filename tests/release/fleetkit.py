"""An env of many pretend hosts, in-process: the real operator code and the real agent on each.

Each host is a `PretendHost` (tests/release/inprocess.py) with its own temporary `/`. The env
the operator uses is the first host's, whose paths lie under the first host's root; the
transport to every other host swaps that root for its own in each line it carries, so every
host holds the same layout under a root of its own, as real hosts do.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from release.agent.phased import Pending
from release.agent.protocol import FINISH
from release.agent.serve import handle
from release.artifacts.store import DirStore
from release.errors import ConnectionFailed, SessionClosed
from release.hosts.context import Context, Options
from release.hosts.deploy import DeployResult
from release.hosts.environments import Environment
from release.hosts.everywhere import deploy
from release.progress import NoProgress
from tests.release.inprocess import (
    FakeSystem,
    InProcessRemote,
    InProcessSession,
    Notes,
    PretendHost,
    pretend_host,
)


class RootedSession(InProcessSession):
    """An agent session on one pretend host, its paths swapped between the env's and its own;
    closing it is the operator's end closing (the agent undoes an unsettled activation)."""

    def __init__(self, system: FakeSystem, host: str, swap: tuple[str, str], fleet: Fleet) -> None:
        super().__init__(system, host)
        self.swap = swap
        self.fleet = fleet
        self.phases = Pending()

    def ask(self, line: str, *, timeout: float | None = None) -> str:
        ours, theirs = self.swap
        message = json.loads(line.replace(ours, theirs))
        if message["command"] == self.fleet.killed_at:
            self.fleet.killed = True
        if self.fleet.killed:
            # The operator was killed: nothing it would have sent reaches any host.
            raise SessionClosed("the operator is gone", host=self.host)
        if (self.host, message["command"]) in self.fleet.cut:
            raise SessionClosed("the connection was cut", host=self.host)
        self.fleet.asked.append((self.host, message["command"]))
        if self.host in self.fleet.hung:
            # It answers, an hour late: the operator's wait, on the fake clock, runs out first.
            self.last = self.system.now
            self.system.now += 3600
            self.pending.append((self.system.now, json.dumps(handle(message, self.system))))
            return self._next(timeout)
        answer = super().ask(json.dumps(message), timeout=timeout)
        first = json.loads(answer)
        self.phases.saw(message, {"ok": False} if "progress" in first else first)
        return answer

    def _next(self, timeout: float | None) -> str:
        return super()._next(timeout).replace(self.swap[1], self.swap[0])

    def close(self) -> None:
        self.phases.abandon(self.system)


@dataclass
class RootedRemote(InProcessRemote):
    """The transport to one pretend host of the fleet."""

    swap: tuple[str, str] = ("", "")
    fleet: Fleet | None = None

    def start(self, command: str, *, stdin_first: str = "") -> InProcessSession:
        assert self.fleet is not None
        self.sessions.append(RootedSession(self.system, self.host, self.swap, self.fleet))
        return self.sessions[-1]

    def put(self, local: Path, remote: str) -> None:
        shutil.copyfile(local, remote.replace(*self.swap))

    def get(self, remote: str, local: Path) -> None:
        shutil.copyfile(remote.replace(*self.swap), local)

    def close(self) -> None:
        for session in self.sessions:
            session.close()


@dataclass
class Fleet:
    """Pretend hosts by name, the env over all of them, one store and one workspace."""

    hosts: dict[str, PretendHost]
    env: Environment
    #: (host, command) of every request, in the order the hosts were asked.
    asked: list[tuple[str, str]] = field(default_factory=list)
    #: Hosts that cannot be reached.
    down: set[str] = field(default_factory=set)
    #: The request at which the operator is killed (before it is sent to any host).
    killed_at: str | None = None
    killed: bool = False
    #: Hosts whose agent answers an hour late.
    hung: set[str] = field(default_factory=set)
    #: (host, request) whose connection is cut as the request is sent (that host only).
    cut: set[tuple[str, str]] = field(default_factory=set)

    @property
    def first(self) -> PretendHost:
        return next(iter(self.hosts.values()))

    @property
    def store(self) -> DirStore:
        return self.first.store

    def remote(self, env: Environment) -> RootedRemote:
        if env.host in self.down:
            raise ConnectionFailed(f"cannot reach {env.host}: no route to host", host=env.host)
        host = self.hosts[env.host]
        swap = (str(self.first.root), str(host.root))
        return RootedRemote(host.system, env.host, swap=swap, fleet=self)

    def whole(self, name: str) -> Environment:
        """Env `name` over every host (the first host's paths)."""
        env = self.first.known[name] if name in self.first.known else self.first.env(name)
        return replace(env, hosts=tuple(self.hosts), host=next(iter(self.hosts)))

    def context(
        self, notes: Notes | None = None, env: Environment | None = None, **options: Any
    ) -> Context:
        return Context(
            root=self.first.workspace,
            env=env or self.env,
            reporter=notes or Notes(),
            remote_factory=self.remote,
            progress=NoProgress(),
            options=Options(**options),
            environments=self.whole,
        )

    def deploy(self, version: str, notes: Notes | None = None, **options: Any) -> DeployResult:
        """`make deploy` to the whole env through the real operator code."""
        return deploy(self.context(notes, **options), version, self.store)

    def artifact(self, version: str) -> str:
        return self.first.artifact(version)

    def on(self, name: str) -> Environment:
        """The env as host `name` holds it (its paths under its own root)."""
        return self.hosts[name].known["dev"]

    def currents(self) -> dict[str, str | None]:
        return {name: host.current(self.on(name)) for name, host in self.hosts.items()}

    def finishes(self, name: str) -> list[dict[str, object]]:
        host = self.hosts[name]
        return [r for r in host.log(self.on(name)) if r["step"] == FINISH]

    def serving(self) -> dict[str, str | None]:
        """The commit each host's service runs."""
        found = {}
        for name, host in self.hosts.items():
            service = host.system.services[self.env.unit]
            found[name] = service.serving[1] if service.serving else None
        return found


def pretend_fleet(tmp: Path, count: int, envs: tuple[str, ...] = ("dev",)) -> Fleet:
    """`count` pretend hosts, each with `envs` set up on it."""
    names = [f"node{n:02d}" for n in range(count)]
    hosts = {name: pretend_host(tmp / name) for name in names}
    for host in hosts.values():
        for name in envs:
            host.set_up(host.env(name))
    first = hosts[names[0]]
    env = replace(first.known["dev"], hosts=tuple(names), host=names[0])
    fleet = Fleet(hosts, env)
    for host in list(hosts.values())[1:]:
        host.store = first.store
    return fleet
