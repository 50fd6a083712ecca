"""The operator's end of the host agent: one session per operation, typed calls."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar, cast

from release.agent.contract import LEGACY
from release.agent.protocol import (
    JOURNAL,
    STATE,
    DataContract,
    EventVersion,
    Health,
    HostPlatform,
    LockHolder,
    LogRecord,
    Message,
    Progress,
    Request,
    StateAnswer,
    StateRequest,
    Target,
)
from release.artifacts.targets import describe
from release.errors import (
    ConnectionFailed,
    HostError,
    RequestNotSent,
    SessionClosed,
    UnsupportedHost,
)
from release.hosts.bundle import AGENT_BUNDLE, BOOTSTRAP
from release.hosts.environments import Environment
from release.hosts.remote import Remote, Session

#: What every host must have, and how to get it (docs/DEPLOYMENT.md, "Supported hosts").
NEEDED = "the host agent and every release need CPython 3.11 or newer"
INSTALL_PYTHON = (
    "install it (Debian 12+, Ubuntu 24.04+: apt install python3) or, where python3 is older, "
    'install python3.11+ beside it and set python = "python3.11" in the env file'
)
#: How a progress line starts (the agent writes it so), told from an answer without parsing it.
_PROGRESS = '{"progress"'

Ans = TypeVar("Ans")


@dataclass(frozen=True)
class HostRelease:
    """A release directory on the host."""

    sha: str
    version: str | None
    tag: str | None
    built_at: str | None
    data_contract: DataContract = field(default_factory=lambda: LEGACY)
    #: The Python (X.Y) its venv was built with, and whether the host still runs it so.
    python: str | None = None
    runnable: bool = True


@dataclass(frozen=True)
class HostState:
    """One snapshot of an environment on the host."""

    releases: dict[str, HostRelease]
    partials: list[str]
    current: str | None
    previous: str | None
    lock: LockHolder | None
    unit: dict[str, str]
    health: Health
    setup: dict[str, bool]
    log: list[LogRecord] = field(default_factory=list)
    #: The event log's schema versions, when asked for (`state(events=True)`).
    event_versions: dict[str, EventVersion] = field(default_factory=dict)
    #: Projections schemas whose read model is on the host.
    read_models: list[int] = field(default_factory=list)
    event_count: int | None = None
    current_lock: str | None = None
    unit_files: dict[str, str] = field(default_factory=dict)
    #: What the env was set up with (None: set up before settings were recorded).
    host_settings: dict[str, str] | None = None
    #: The host's python3, machine and glibc.
    platform: HostPlatform | None = None

    def version_of(self, sha: str | None) -> str | None:
        """The version of a release on the host."""
        release = self.releases.get(sha or "")
        return release.version if release else None

    @classmethod
    def of(cls, raw: StateAnswer) -> HostState:
        """From the agent's `state` answer (only complete releases count); every other field
        is the answer's own, by name (tests/release/hosts/test_host.py holds the two together)."""
        answer = cast(dict[str, Any], raw)
        same = {f.name: answer[f.name] for f in fields(cls) if f.name in answer}
        same["releases"] = {
            r["sha"]: HostRelease(
                r["sha"],
                r.get("version"),
                r.get("tag"),
                r.get("built_at"),
                r.get("data_contract") or LEGACY,
                r.get("python"),
                r.get("runnable", True),
            )
            for r in raw["releases"]
            if r["complete"]
        }
        return cls(**same)


def target_of(env: Environment) -> Target:
    """What every request says about the environment it is for."""
    return {
        "env": env.name,
        "base_dir": env.base_dir,
        "data_dir": env.data_dir,
        "config_file": env.config_file,
        "unit": env.unit,
        "port": env.port,
    }


class Host:
    """An environment on a host, reached through a Remote."""

    def __init__(self, remote: Remote, env: Environment) -> None:
        self.remote = remote
        self.env = env
        self._session: Session | None = None
        self._greeted = False
        #: A call was cut short (Ctrl-C) after its request left: its answer is still coming.
        self._unanswered = False
        #: The host's python3, machine and glibc, from the agent's hello.
        self.platform: HostPlatform | None = None
        #: Where the progress lines of a long step go (nowhere unless set).
        self.on_progress: Callable[[Progress], None] | None = None

    def call(
        self,
        request: Request[Ans],
        *,
        target: Target | None = None,
        record: LogRecord | None = None,
        log_before: Sequence[LogRecord] = (),
    ) -> Ans:
        """Run one agent command on the host and return its answer, or raise HostError.

        `record` is completed with the outcome and appended to the deploy log by the host;
        `log_before` is appended before the command runs.
        """
        message: Message = {
            "command": request.command,
            "target": target or target_of(self.env),
            "request": request.body,
        }
        if record is not None:
            message["record"] = record
        if log_before:
            message["log_before"] = list(log_before)
        # A request's `timeout` is the agent's own deadline (a health gate's); the answer may
        # take that long plus a restart, so the wait is longer, and never shorter than a build.
        body = request.body
        deadline = body.get("timeout") if isinstance(body, dict) else None
        wait = request.limit + float(deadline or 0)
        line = self._send(request.command, json.dumps(message), wait)
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            self.close()
            raise HostError(
                f"the host agent answered {request.command} with {line.strip()[:80]!r}",
                host=self.remote.host,
                env=self.env.name,
            )
        if not answer.get("ok"):
            raise HostError(str(answer.get("error")), host=self.remote.host, env=self.env.name)
        result: Ans = answer["result"]
        return result

    def _send(self, name: str, message: str, wait: float) -> str:
        try:
            try:
                return self._exchange(message, wait)
            except RequestNotSent:
                # The host never saw the request: a new connection and agent may send it.
                self.close()
                return self._exchange(message, wait)
        except ConnectionFailed:
            # The session is gone: the next call starts a new one (the lock goes back that way).
            self.close()
            raise
        except SessionClosed as exc:
            # A timed-out or dead agent may still answer later: never read from it again.
            self.close()
            self._require_interpreter(exc)
            raise HostError(
                f"the host agent failed ({name}): {exc.message}",
                host=self.remote.host,
                env=self.env.name,
            ) from None

    def _exchange(self, message: str, wait: float) -> str:
        session = self._agent()
        if self._unanswered:
            # The agent answers in order: the interrupted call's answer must not be taken for
            # this one's. Waiting for it also lets that step finish before the next goes.
            try:
                self._answer(session, session.receive(timeout=wait), wait, shown=False)
            except ConnectionFailed:
                raise RequestNotSent("lost the SSH connection", host=self.remote.host) from None
        self._unanswered = True
        line = self._answer(session, session.ask(message, timeout=wait), wait, shown=True)
        self._unanswered = False
        return line

    def _answer(self, session: Session, line: str, wait: float, *, shown: bool) -> str:
        """The answer line, past the progress lines a long step sends before it (the watch
        counting down), which go to `on_progress` when `shown`."""
        while line.startswith(_PROGRESS):
            if shown and self.on_progress is not None:
                self.on_progress(json.loads(line)["progress"])
            line = session.receive(timeout=wait)
        return line

    def dial(self) -> Host:
        """Start connecting and the agent, without waiting: nothing is sent to it yet."""
        if self._session is None:
            # One agent process per operation: each further step is one line each way.
            self._session = self.remote.start(
                f"{self.env.python} -c {shlex.quote(BOOTSTRAP)}", stdin_first=AGENT_BUNDLE
            )
            self._greeted = False
        return self

    def _agent(self) -> Session:
        self.dial()
        assert self._session is not None
        if not self._greeted:
            try:
                # Its hello proves the connection and the interpreter before any request goes.
                self._greet(self._session.receive())
            except SessionClosed as exc:
                self.close()
                self._require_interpreter(exc)
                raise
            except BaseException:
                self.close()
                raise
            self._greeted = True
        return self._session

    def _require_interpreter(self, exc: SessionClosed) -> None:
        """An agent that could not start because the host has no such interpreter: say so."""
        python = self.env.python
        if any(f"{python}: {no}" in exc.message for no in ("not found", "command not found")):
            raise UnsupportedHost(
                f"the host has no {python}; {NEEDED}",
                hint=INSTALL_PYTHON,
                host=self.remote.host,
                env=self.env.name,
            ) from None

    def _greet(self, line: str) -> None:
        """Take the agent's hello; one refusing its interpreter says what the host has."""
        try:
            hello = json.loads(line)
        except ValueError:
            hello = None
        if not isinstance(hello, dict):
            raise HostError(
                f"the host agent started with {line.strip()[:80]!r} instead of its hello",
                host=self.remote.host,
                env=self.env.name,
            )
        if not hello.get("ok") and isinstance(hello.get("platform"), dict):
            found = describe(cast(HostPlatform, hello["platform"]))
            raise UnsupportedHost(
                f"the host has {found}; {NEEDED}",
                hint=INSTALL_PYTHON,
                host=self.remote.host,
                env=self.env.name,
            )
        result = hello.get("result")
        if isinstance(result, dict) and isinstance(result.get("platform"), dict):
            self.platform = cast(HostPlatform, result["platform"])

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

    def state(self, request: StateRequest | None = None) -> HostState:
        """Releases, links, lock, unit, the deploy log, and what `request` asks for besides
        (health, the event log's schema versions or size, the current lock and unit files)."""
        return HostState.of(self.call(STATE(request or {})))

    def journal(self, lines: int = 20) -> list[str]:
        """The unit's last journal lines."""
        return self.call(JOURNAL({"lines": lines}))["lines"]
