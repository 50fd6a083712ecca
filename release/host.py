"""What is on a host for one environment, and the operations on it, via the host agent."""

from __future__ import annotations

import base64
import json
import shlex
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release.environments import Environment
from release.errors import ConnectionFailed, ReleaseError, RequestNotSent, SessionClosed
from release.remote import Remote, Session

#: What `python3 -c` runs on the host: read the agent from the first line of stdin, run it.
#: The agent never travels on the command line, where Linux refuses an argument over 128 kB.
BOOTSTRAP = (
    "import base64,sys,zlib;sys.argv=['helionyx-agent','serve'];"
    "exec(compile(zlib.decompress(base64.b64decode(sys.stdin.readline())),"
    "'helionyx-agent','exec'))"
)


def agent_bundle(source: bytes) -> str:
    """The agent as the one line BOOTSTRAP reads: compressed, base64."""
    return base64.b64encode(zlib.compress(source, 9)).decode()


# Read as text, not imported: it runs on the host, not here.
AGENT_BUNDLE = agent_bundle(Path(__file__).with_name("agent.py").read_bytes())


#: How long any agent call may take beyond its own deadline (builds included).
CALL_LIMIT = 600.0


class HostError(ReleaseError):
    """The host refused or failed an operation."""


@dataclass(frozen=True)
class HostRelease:
    """A release directory on the host."""

    sha: str
    version: str | None
    tag: str | None
    built_at: str | None


@dataclass(frozen=True)
class HostState:
    """One snapshot of an environment on the host."""

    releases: dict[str, HostRelease]
    partials: list[str]
    current: str | None
    previous: str | None
    lock: dict[str, Any] | None
    unit: dict[str, str]
    health: dict[str, Any]
    setup: dict[str, bool]
    log: list[dict[str, Any]] = field(default_factory=list)

    def version_of(self, sha: str | None) -> str | None:
        """The version of a release on the host."""
        release = self.releases.get(sha or "")
        return release.version if release else None


class Host:
    """An environment on a host, reached through a Remote."""

    def __init__(self, remote: Remote, env: Environment) -> None:
        self.remote = remote
        self.env = env
        self._session: Session | None = None
        self._greeted = False
        #: A call was cut short (Ctrl-C) after its request left: its answer is still coming.
        self._unanswered = False

    def base_request(self) -> dict[str, Any]:
        """What every agent call needs to know about the environment."""
        return {
            "base_dir": self.env.base_dir,
            "data_dir": self.env.data_dir,
            "config_file": self.env.config_file,
            "unit": self.env.unit,
            "port": self.env.port,
            "env": self.env.name,
        }

    def call(self, command: str, /, **request: Any) -> Any:
        """Run one agent command on the host and return its result, or raise HostError."""
        message = json.dumps({"command": command, "request": {**self.base_request(), **request}})
        # `timeout` in a request is the agent's own deadline (a health gate's); the answer may
        # take that long plus a restart, so the wait is longer, and never shorter than a build.
        wait = max(CALL_LIMIT, float(request.get("timeout") or 0) + CALL_LIMIT)
        try:
            try:
                line = self._exchange(message, wait)
            except RequestNotSent:
                # The host never saw the request: a new connection and agent may send it.
                self.close()
                line = self._exchange(message, wait)
        except ConnectionFailed:
            # The session is gone: the next call starts a new one (the lock goes back that way).
            self.close()
            raise
        except SessionClosed as exc:
            # A timed-out or dead agent may still answer later: never read from it again.
            self.close()
            raise HostError(
                f"the host agent failed ({command}): {exc.message}",
                hint="the host needs python3" if "not found" in exc.message else None,
                host=self.remote.host,
                env=self.env.name,
            ) from None
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            self.close()
            raise HostError(
                f"the host agent answered {command} with {line.strip()[:80]!r}",
                host=self.remote.host,
                env=self.env.name,
            )
        if not answer.get("ok"):
            raise HostError(str(answer.get("error")), host=self.remote.host, env=self.env.name)
        return answer["result"]

    def _exchange(self, message: str, wait: float) -> str:
        session = self._agent()
        if self._unanswered:
            # The agent answers in order: the interrupted call's answer must not be taken for
            # this one's. Waiting for it also lets that step finish before the next goes.
            try:
                session.receive(timeout=wait)
            except ConnectionFailed:
                raise RequestNotSent("lost the SSH connection", host=self.remote.host) from None
        self._unanswered = True
        line = session.ask(message, timeout=wait)
        self._unanswered = False
        return line

    def dial(self) -> Host:
        """Start connecting and the agent, without waiting: nothing is sent to it yet."""
        if self._session is None:
            # One agent process per operation: each further step is one line each way.
            self._session = self.remote.start(
                f"python3 -c {shlex.quote(BOOTSTRAP)}", stdin_first=AGENT_BUNDLE
            )
            self._greeted = False
        return self

    def _agent(self) -> Session:
        self.dial()
        assert self._session is not None
        if not self._greeted:
            try:
                # Its hello proves the connection and the interpreter before any request goes.
                self._session.receive()
            except BaseException:
                self.close()
                raise
            self._greeted = True
        return self._session

    def open(self) -> Host:
        """Connect and start the agent now, and wait for its hello (else the first call does)."""
        self._agent()
        return self

    def close(self) -> None:
        """Let the agent exit (its current step, if any, still finishes on the host)."""
        self._unanswered = False
        if self._session is not None:
            session, self._session = self._session, None
            session.close()

    def state(self, *, probe: bool = False) -> HostState:
        """Releases, links, lock, unit, optionally health, and the deploy log."""
        return parse_state(self.call("state", probe=probe))

    def journal(self, lines: int = 20) -> list[str]:
        """The unit's last journal lines."""
        result: list[str] = self.call("journal", lines=lines)["lines"]
        return result


def parse_state(raw: dict[str, Any]) -> HostState:
    """A HostState from the agent's `state` answer."""
    releases = {
        r["sha"]: HostRelease(r["sha"], r.get("version"), r.get("tag"), r.get("built_at"))
        for r in raw["releases"]
        if r.get("complete")
    }
    return HostState(
        releases=releases,
        partials=raw["partials"],
        current=raw["current"],
        previous=raw["previous"],
        lock=raw["lock"],
        unit=raw["unit"],
        health=raw["health"],
        setup=raw["setup"],
        log=raw["log"],
    )
