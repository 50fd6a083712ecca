"""The agent protocol seen from the operator's side, against a hand-written fake of the channel.

The real channel (an `ssh` process to the test node) is exercised by the deploy tests; these pin
down what `Host` does when that channel misbehaves in ways the node cannot stage on cue.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections import deque
from dataclasses import fields
from pathlib import Path
from typing import cast, get_type_hints

import pytest

import release.agent
from release.agent.protocol import INSTALL, PREPARE, STATE, UNLOCK, Progress, StateAnswer
from release.errors import ConnectionFailed, RequestNotSent
from release.hosts.bundle import BOOTSTRAP, agent_bundle, sources
from release.hosts.environments import load
from release.hosts.host import Host, HostState
from release.hosts.remote import Result

REPO = Path(__file__).resolve().parents[3]


class FakeAgent:
    """The host side: answers each request in order with the command it was for."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        #: What the next ask does instead of waiting for its answer.
        self.next_ask: type[BaseException] | None = None
        #: Progress lines each step sends before its answer (a watch counting down).
        self.progress_lines = 0


class FakeSession:
    """One agent process reached over one connection."""

    def __init__(self, agent: FakeAgent, *, dead: bool = False) -> None:
        self.agent = agent
        self.dead = dead
        self.closed = False
        self.outbox = deque([json.dumps({"ok": True, "result": {"agent": 1}}) + "\n"])

    def receive(self, *, timeout: float | None = 30.0) -> str:
        if self.dead or not self.outbox:
            raise ConnectionFailed("lost the SSH connection")
        return self.outbox.popleft()

    def ask(self, line: str, *, timeout: float | None = None) -> str:
        if self.dead:
            raise RequestNotSent("lost the SSH connection")
        command = json.loads(line)["command"]
        self.agent.seen.append(command)
        for done in range(self.agent.progress_lines):
            progress = {"step": command, "done": float(done), "total": 9.0}
            self.outbox.append(json.dumps({"progress": progress}) + "\n")
        self.outbox.append(json.dumps({"ok": True, "result": {"answered": command}}) + "\n")
        failure, self.agent.next_ask = self.agent.next_ask, None
        if failure is ConnectionFailed:
            self.dead = True
            raise ConnectionFailed("lost the SSH connection")
        if failure is not None:
            raise failure()
        return self.receive()

    def close(self) -> None:
        self.closed = True


class FakeRemote:
    """Starts a FakeSession per agent start."""

    host = "node1"

    def __init__(self, agent: FakeAgent) -> None:
        self.agent = agent
        self.sessions: list[FakeSession] = []

    def start(self, command: str, *, stdin_first: str = "") -> FakeSession:
        assert stdin_first, "the agent travels on stdin"
        self.sessions.append(FakeSession(self.agent))
        return self.sessions[-1]

    def run(self, command: str, *, timeout: float | None = None) -> Result:
        raise AssertionError("the agent protocol never runs plain commands")

    def put(self, local: Path, remote: str) -> None:
        raise AssertionError("not part of the agent protocol")

    def get(self, remote: str, local: Path) -> None:
        raise AssertionError("not part of the agent protocol")

    def stream(self, command: str) -> int:
        raise AssertionError("not part of the agent protocol")

    def close(self) -> None:
        pass


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def remote(agent: FakeAgent) -> FakeRemote:
    return FakeRemote(agent)


@pytest.fixture
def host(remote: FakeRemote) -> Host:
    return Host(remote, load(REPO, "dev", environ={}))


def test_an_interrupted_calls_answer_is_not_taken_for_the_next_ones(
    host: Host, agent: FakeAgent, remote: FakeRemote
) -> None:
    agent.next_ask = KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        host.call(INSTALL({"sha": "a", "archive": "b", "donor": None, "reuse": []}))
    assert cast(object, host.call(UNLOCK({}))) == {"answered": "unlock"}
    assert agent.seen == ["install", "unlock"]
    assert len(remote.sessions) == 1, "the session outlived the interrupt"


def test_progress_before_an_answer_is_shown_and_the_answer_still_read(
    host: Host, agent: FakeAgent
) -> None:
    agent.progress_lines = 3
    seen: list[Progress] = []
    host.on_progress = seen.append
    assert cast(object, host.call(UNLOCK({}))) == {"answered": "unlock"}
    assert [p["done"] for p in seen] == [0.0, 1.0, 2.0]


def test_an_interrupted_calls_progress_and_answer_are_not_taken_for_the_next_ones(
    host: Host, agent: FakeAgent
) -> None:
    agent.progress_lines, agent.next_ask = 2, KeyboardInterrupt
    seen: list[Progress] = []
    host.on_progress = seen.append
    with pytest.raises(KeyboardInterrupt):
        host.call(INSTALL({"sha": "a", "archive": "b", "donor": None, "reuse": []}))
    agent.progress_lines = 0
    assert cast(object, host.call(UNLOCK({}))) == {"answered": "unlock"}
    assert seen == [], "an interrupted step's progress is not shown as the next one's"


def test_a_request_the_host_never_saw_is_sent_once_more_on_a_new_session(
    host: Host, agent: FakeAgent, remote: FakeRemote
) -> None:
    assert cast(object, host.call(STATE({}))) == {"answered": "state"}
    remote.sessions[0].dead = True
    assert cast(object, host.call(PREPARE({"sha": "a"}))) == {"answered": "prepare"}
    assert agent.seen == ["state", "prepare"]
    assert len(remote.sessions) == 2 and remote.sessions[0].closed


def test_a_session_lost_during_a_step_fails_it_and_the_next_call_starts_afresh(
    host: Host, agent: FakeAgent, remote: FakeRemote
) -> None:
    agent.next_ask = ConnectionFailed
    with pytest.raises(ConnectionFailed):
        host.call(INSTALL({"sha": "a", "archive": "b", "donor": None, "reuse": []}))
    # An interrupted answer would be pending too, but never read from a dead session.
    assert cast(object, host.call(UNLOCK({}))) == {"answered": "unlock"}
    assert agent.seen == ["install", "unlock"], "the lost step is not sent again"
    assert len(remote.sessions) == 2 and remote.sessions[0].closed


def test_the_agent_greets_before_any_request(host: Host, remote: FakeRemote) -> None:
    host.open()
    assert remote.sessions[0].outbox == deque(), "the greeting was read at connect"


def test_an_agent_far_larger_than_one_argument_may_be_still_starts() -> None:
    """Linux refuses one argument over 128 kB; the agent travels on stdin, so size is no wall."""
    modules = sources(Path(release.agent.__file__).parent)
    # 400 kB that barely compresses, as one more module of the package.
    modules["helionyx_agent.padding"] = (False, "# " + secrets.token_hex(200_000) + "\n")
    bundle = agent_bundle(modules)
    assert len(bundle) > 256 * 1024
    assert len(BOOTSTRAP) < 1024, "the command line stays small"
    with pytest.raises(OSError, match="Argument list too long"):
        subprocess.run([sys.executable, "-c", "pass", bundle], check=False)  # the old way
    started = subprocess.run(
        [sys.executable, "-c", BOOTSTRAP],
        input=bundle + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    hello = json.loads(started.stdout.splitlines()[0])
    assert hello["ok"] and isinstance(hello["result"]["agent"], int)


def test_host_state_holds_exactly_what_the_state_answer_carries() -> None:
    answer = set(get_type_hints(StateAnswer))
    assert {f.name for f in fields(HostState)} == answer


def test_host_state_takes_every_field_of_an_answer_by_name(tmp_path: Path) -> None:
    from tests.release.agent.agentkit import ask, target  # noqa: PLC0415
    from tests.release.inprocess import FakeSystem  # noqa: PLC0415

    system = FakeSystem(tmp_path)
    raw = ask(system, STATE({"details": True, "count_events": True}), target(tmp_path))
    state = HostState.of(raw)
    for name in set(get_type_hints(StateAnswer)) - {"releases"}:
        if name in raw:
            assert getattr(state, name) == raw[name], name  # type: ignore[literal-required]
