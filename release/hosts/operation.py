"""What every host operation shares: one connection, the lock, timed steps, the audit record."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeVar

from release.agent.protocol import FAILED, FINISH, SUCCEEDED, Gate, LogRecord, Request
from release.agent.timestamps import utc_timestamp
from release.errors import ConnectionFailed, HostError, OperationFailed, UsageError
from release.hosts.context import Context, Reporter
from release.hosts.environments import Environment
from release.hosts.host import Host, HostState
from release.hosts.lock import EnvLock, operator

Ans = TypeVar("Ans")


@dataclass
class Operation:
    """One locked operation on one environment, recorded in the host's deploy log."""

    ctx: Context
    action: str
    #: The env's systemd units; every restart refreshes them on the host (migrating old hosts).
    units: dict[str, str] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started_at: str = field(default_factory=utc_timestamp)
    #: What every record of this operation says besides its step (version, sha, …).
    context: LogRecord = field(default_factory=LogRecord)
    notices: list[str] = field(default_factory=list)
    host: Host | None = None
    lock: EnvLock | None = None
    #: Set once a step that writes the operation's finish record on the host was sent.
    finished_on_host: bool = False
    #: The host settings the operation sets up (checked against the host's before the lock).
    settings: dict[str, str] | None = None
    #: The closing record the lock's release writes; None (a refusal) writes none.
    finish: LogRecord | None = None

    def __post_init__(self) -> None:
        one_host(self.env, self.action)

    @property
    def env(self) -> Environment:
        """The env this operation acts on."""
        return self.ctx.env

    @property
    def reporter(self) -> Reporter:
        """Where its progress goes."""
        return self.ctx.reporter

    def dial(self) -> None:
        """Start connecting while this side has other work; any failure shows at connect()."""
        try:
            self.host = Host(self.ctx.remote(), self.env).dial()
        except ConnectionFailed:
            self.host = None

    def connect(self) -> Host:
        """Open the one SSH connection this operation uses (or finish opening it)."""
        with self.timed("connect", self.env.host):
            if self.host is None:
                self.host = Host(self.ctx.remote(), self.env)
            self.host.on_progress = self.reporter.progress
            self.host.open()
        return self.host

    @contextmanager
    def locked(self, command: str, *, needs_setup: bool = True) -> Iterator[HostState]:
        """Connect (if not yet), take the lock, check set-up; give the lock back afterwards,
        writing `self.finish` with it: the one shape of every operation that changes a host."""
        self.connect()
        state = self.take_lock(command)
        try:
            if needs_setup:
                require_setup(state, self.env)
            yield state
        finally:
            self.close()

    def take_lock(self, command: str) -> HostState:
        """Take the env lock and read the host's state."""
        assert self.host is not None
        with self.timed("lock", self.env.name):
            self.lock = EnvLock(
                self.host,
                command,
                self.notices,
                wait=self.ctx.options.wait,
                notify=self.reporter.note,
                clock=self.ctx.clock,
            )
            state = self.lock.acquire()
        for notice in self.notices:
            self.reporter.note(notice)
        return state

    def record(self, step: str) -> LogRecord:
        """The audit fields for one step of this operation."""
        record: LogRecord = {
            "deploy_id": self.id,
            "action": self.action,
            "env": self.env.name,
            "operator": operator(),
            "step": step,
        }
        record.update(self.context)
        return record

    def finish_event(self, outcome: str, reason: str | None = None) -> LogRecord:
        """The closing record of this operation."""
        event = self.record(FINISH)
        event.update(
            {"outcome": outcome, "started_at": self.started_at, "ended_at": utc_timestamp()}
        )
        if reason:
            event["reason"] = reason
        return event

    def settle(self, after: str, gate: Gate) -> None:
        """Record how an action that ends in a health gate went; raise when unhealthy."""
        if gate["healthy"]:
            self.finish = self.finish_event(SUCCEEDED)
            return
        assert self.host is not None
        reason = gate.get("reason", "unhealthy")
        self.finish = self.finish_event(FAILED, reason)
        raise OperationFailed(
            f"{self.env.name} is not healthy after the {after}: {reason}",
            details=self.host.journal(20),
            env=self.env.name,
            host=self.env.host,
        )

    def call(self, step: str, request: Request[Ans]) -> Ans:
        """An agent call whose outcome the host records in the deploy log."""
        assert self.host is not None
        result = self.host.call(request, record=self.record(step))
        # Unit refreshes and migrations done on the way are worth telling the operator.
        changes = result.get("changes", []) if isinstance(result, dict) else []
        for change in changes:
            self.reporter.note(str(change))
        how = result.get("how") if isinstance(result, dict) else None
        if how:
            self.reporter.note(str(how))
        return result

    def step(
        self, name: str, request: Request[Ans], detail: str = "", *, recorded_as: str = ""
    ) -> Ans:
        """One timed agent call, reported as `name` and recorded as `recorded_as` (or `name`)."""
        with self.timed(name, detail):
            return self.call(recorded_as or name, request)

    @contextmanager
    def timed(self, name: str, detail: str = "") -> Iterator[None]:
        """Report a step with its duration when it completes."""
        started = time.monotonic()
        try:
            yield
        except ConnectionFailed as exc:
            raise ConnectionFailed(
                f"{exc.message} during {name}",
                hint=exc.hint
                or f"check that {self.env.host} is up, then run the same command again: "
                "it repairs what this one left",
                host=exc.host,
                env=self.env.name,
            ) from None
        self.reporter.step(name, time.monotonic() - started, detail)
        pause_for_tests(name)

    def close(self) -> None:
        """Release the lock (writing `self.finish` with it) and disconnect."""
        finish = self.finish
        in_flight = sys.exc_info()[1]
        failing = in_flight is not None
        if isinstance(in_flight, KeyboardInterrupt) and self.lock is not None:
            self.reporter.note(
                "interrupted: letting the step under way finish on the host, then unlocking "
                "(Ctrl-C again leaves at once; the next run repairs)"
            )
            finish = finish or self.finish_event(FAILED, "interrupted by the operator (Ctrl-C)")
        if self.finished_on_host:
            finish = None  # the host wrote it, or will once its step ends
        try:
            if self.lock is not None:
                try:
                    self.lock.release(log_before=[finish] if finish else [])
                except (ConnectionFailed, HostError):
                    if not failing:
                        raise
                    # The error already on its way out says what went wrong; the lock stays
                    # and the next operation breaks it once this process is gone.
        finally:
            if self.host is not None:
                self.host.close()
                self.host.remote.close()

    def __enter__(self) -> Operation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.host is not None:
            self.host.close()
            self.host.remote.close()


def require_setup(state: HostState, env: Environment) -> None:
    """Refuse to operate on an environment `make setup-host` has not prepared."""
    missing = [name for name, present in state.setup.items() if not present]
    if missing:
        raise HostError(
            f"{env.name} is not set up on {env.host} (missing: {', '.join(missing)})",
            hint=f"run make setup-host ENV={env.name} first",
            env=env.name,
            host=env.host,
        )


def one_host(env: Environment, command: str) -> None:
    """Refuse a command built for one host when the env spans several (those built for several
    check `env.several` first)."""
    if env.several:
        raise UsageError(
            f"{command} works on an env of one host; {env.name} has {len(env.hosts)} "
            f"({', '.join(env.hosts)})",
            hint="each host holds its own data: to act on one host alone, give it an env file "
            'of its own (host = "…")',
            env=env.name,
        )


@contextmanager
def reading(ctx: Context, command: str = "this command") -> Iterator[Host]:
    """The env's host for a command that only reads or reports (no lock, no record)."""
    one_host(ctx.env, command)
    remote = ctx.remote()
    host = Host(remote, ctx.env)
    try:
        yield host
    finally:
        host.close()
        remote.close()


def pause_for_tests(step: str) -> None:
    """HELIONYX_PAUSE_AFTER=<step> parks the process after that step so a test can break
    something meanwhile, then kill it or let it go on with SIGUSR1."""
    if os.environ.get("HELIONYX_PAUSE_AFTER") == step:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        print(f"paused after {step}", file=sys.stderr, flush=True)
        signal.sigtimedwait({signal.SIGUSR1}, 600)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
