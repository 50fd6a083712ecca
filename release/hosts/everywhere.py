"""Deploying to an env of several hosts: stage everywhere, switch everywhere, or change nothing.

resolve → fetch + verify (once) → connect and plan on every host at once → lock every host, one
after the other in the env's order → stage on every host at once (upload, offline build, smoke
check, read model) → ready on every host at once (the new release started beside the running
one on its socket, held: it answers nothing) → switch every host at once → health gate and
watch on each → settle: keep it on every host, or bring every host that moved back. A failure
on any host at any step changes nothing on the others before the switch, and brings all back
after it; the deploy log on each host records the env's outcome. The host side is
`release/agent/phased.py`; an env of one host takes `deploy.deploy` as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TypeVar

from release.agent.protocol import (
    FAILED,
    GO_READY,
    GO_SETTLE,
    GO_SWITCH,
    NOOP,
    ROLLED_BACK,
    SUCCEEDED,
    ReadyAnswer,
    ReadyRequest,
    SettleAnswer,
    SettleRequest,
)
from release.artifacts.artifact import Artifact
from release.artifacts.store import Store
from release.errors import OperationFailed, ReleaseError, UsageError
from release.hosts import deploy as single
from release.hosts.context import Context
from release.hosts.fleet import Answer, concurrently, contexts, failures, values
from release.hosts.gate import enforce
from release.hosts.host import HostState
from release.hosts.notify import tell
from release.hosts.operation import Operation, pause_for_tests, require_setup
from release.hosts.units import render_units

T = TypeVar("T")
A = TypeVar("A")

#: How long past its health timeout a host's ready release waits, held, to be told to switch:
#: the other hosts are getting ready meanwhile (an agent whose operator is gone aborts at once).
HOLD_MARGIN = 90.0


@dataclass
class OnHost:
    """One host's part of an operation on the env: its operation (connection, lock, records)
    and its state once locked."""

    op: Operation
    state: HostState | None = None
    projections: str = ""
    rebuild: bool = False
    estimate: float | None = None

    @property
    def name(self) -> str:
        return self.op.env.host

    @property
    def current(self) -> str | None:
        return self.state.current if self.state else None


def deploy(
    ctx: Context, ref: str, store: Store, *, promoted_from: str | None = None
) -> single.DeployResult:
    """Deploy release `ref` to every host of the context's env, all or nothing (one host:
    `deploy.deploy`)."""
    if not ctx.env.several:
        return single.deploy(ctx, ref, store, promoted_from=promoted_from)
    env, reporter = ctx.env, ctx.reporter
    what = f"promotion from {promoted_from} of" if promoted_from else "deploy of"
    started = time.monotonic()
    info = store.find(ref)
    reporter.headline(
        f"deploying {info.version} ({info.sha[:12]}) to {env.name} on {len(env.hosts)} hosts "
        f"({', '.join(env.hosts)})"
    )
    units = render_units(ctx.root, env)
    hosts = [OnHost(Operation(on, "deploy", units)) for on in contexts(ctx)]
    with closing(hosts):
        for host in hosts:
            host.op.dial()
        verifying = time.monotonic()
        artifact = single.fetch_verified(ctx, info, store)
        reporter.step("fetch + verify", time.monotonic() - verifying, info.version)
        sha, version = artifact.commit, artifact.version
        release = f"{version} ({sha[:12]})"
        everywhere(hosts, "plan", lambda h: _plan(h, artifact))
        if ctx.options.forced is not None and not ctx.options.forced.strip():
            raise UsageError("FORCE=1 needs a reason", hint='add REASON="why" (it is recorded)')
        enforce(hosts[0].op, sha)
        for host in hosts:
            if promoted_from:
                host.op.context["promoted_from"] = promoted_from
            for key in ("forced", "skipped"):  # the gate's override, recorded on every host
                if key in hosts[0].op.context:
                    host.op.context[key] = hosts[0].op.context[key]
        _lock_in_order(hosts, artifact, store.label)
        if all(h.state and h.current == sha and single.serving_sha(h.state) == sha for h in hosts):
            for host in hosts:
                host.op.finish = host.op.finish_event(NOOP)
            reporter.note(f"{release} is already deployed and healthy on every host")
            everywhere(hosts, "prune", lambda h: single.prune_and_report(h.op, sha))
            return single.DeployResult(NOOP, version, sha, hosts[0].current)
        outcome, reason = go_live(ctx, hosts, sha, version, stage=lambda h: _stage(h, artifact))
        if outcome != SUCCEEDED:
            told = f"{'rolled back' if outcome == ROLLED_BACK else 'failed'}: {reason}"
            tell(env, what, release, told, started=started, warn=reporter.note)
            raise OperationFailed(f"deploy of {version} failed: {reason}", env=env.name)
        everywhere(hosts, "prune", lambda h: single.prune_and_report(h.op, sha))
        tell(env, what, release, "succeeded", started=started, warn=reporter.note)
        return single.DeployResult(SUCCEEDED, version, sha, hosts[0].current)


def _plan(host: OnHost, artifact: Artifact) -> None:
    """Connect, read the host and refuse what needs the operator's say-so (nothing changes)."""
    ahead = single.look_ahead(host.op, artifact)
    host.estimate, host.projections = ahead.rebuild_seconds, ahead.projections


def _lock_in_order(hosts: list[OnHost], artifact: Artifact, source: str) -> None:
    """The lock of every host, taken one after the other in the env's order (two operators
    never hold half each); a host whose lock is held fails the deploy, and the locks taken go
    back as the operations close."""
    for host in hosts:
        host.state = host.op.take_lock(f"deploy {artifact.version}")
        require_setup(host.state, host.op.env)
        host.op.context.update(
            {
                "version": artifact.version,
                "sha": artifact.commit,
                "previous_sha": host.state.current,
                "source": source,
            }
        )
        host.rebuild = single.rebuild_needed(
            host.op, host.state, artifact, projections=host.projections
        )


def _stage(host: OnHost, artifact: Artifact) -> None:
    assert host.state is not None
    single.stage(host.op, artifact, host.state, host.rebuild, estimate=host.estimate)


def go_live(
    ctx: Context,
    hosts: list[OnHost],
    sha: str,
    version: str,
    *,
    stage: Callable[[OnHost], None] | None = None,
) -> tuple[str, str | None]:
    """Stage (if asked) and get ready on every host at once, each host as soon as it staged;
    then switch every host; then settle: the env's outcome and why. A staging failure is
    raised (as the host's error, naming it) once the hosts that got ready are settled back."""

    def ready(host: OnHost) -> ReadyAnswer:
        if stage is not None:
            stage(host)
        # From here the host finishes and records the operation whatever happens to us.
        host.op.finished_on_host = True
        return host.op.call("ready", GO_READY(_ready(ctx, host, sha, version)))

    readies = phase(ctx, hosts, "ready", ready)
    asked = [h for h in hosts if h.op.finished_on_host]
    unstaged = [a for a, h in zip(readies, hosts, strict=True) if not h.op.finished_on_host]
    if unstaged:
        reason = f"staging failed on {failures(unstaged)}"
        _settle(asked, keep=False, outcome=FAILED, reason=reason)
        for host in hosts:
            if not host.op.finished_on_host:
                host.op.finish = host.op.finish_event(FAILED, reason)
        values(unstaged, "staging")  # raises the first host's error, naming them all
    not_ready = _problems(readies, lambda a: None if a["ready"] else str(a["reason"]))
    if not_ready is not None:
        reason = f"not ready on every host, so none switched: {not_ready}"
        _settle(hosts, keep=False, outcome=FAILED, reason=reason)
        return FAILED, reason
    switched = phase(ctx, hosts, "switch", lambda h: h.op.call("switch", GO_SWITCH({})))
    unhealthy = _problems(
        switched, lambda a: None if a["outcome"] == SUCCEEDED else str(a["reason"])
    )
    if unhealthy is None:
        kept = _settle(hosts, keep=True, outcome=SUCCEEDED, reason=None)
        lost = [a.host for a in kept if a.error is not None]
        if not lost:
            return SUCCEEDED, None
        # Their agents, never told to keep it, go back by themselves as the connection closes.
        return FAILED, (
            f"every host was healthy on it, but {', '.join(lost)} could not be told to keep it "
            "and goes back by itself: make deploy again to even the hosts out"
        )
    reason = f"{unhealthy}; every host went back"
    settled = _settle(hosts, keep=False, outcome=ROLLED_BACK, reason=reason)
    left = [a.host for a in settled if a.error is None and not (a.value and a.value["healthy"])]
    if left:
        return FAILED, f"{reason}, but {', '.join(left)} is not healthy after it"
    return ROLLED_BACK, reason


def _ready(ctx: Context, host: OnHost, sha: str, version: str) -> ReadyRequest:
    """What a host needs to get ready, switch, and go back (as `deploy.deploy`'s go-live)."""
    state, env = host.state, ctx.env
    assert state is not None
    back_to = state.current if state.current in state.releases else None
    return {
        "sha": sha,
        "version": version,
        "previous": state.current if state.current != sha else state.previous,
        "timeout": env.health_timeout,
        "units": host.op.units,
        "settings": host.op.settings or {},
        "back_to": back_to,
        "back_version": state.version_of(back_to) if back_to else None,
        "back_previous": state.previous,
        "finish": host.op.finish_event(SUCCEEDED),
        "watch": env.watch,
        "hold": env.health_timeout + HOLD_MARGIN,
    }


def _problems(answers: list[Answer[A]], bad: Callable[[A], str | None]) -> str | None:
    """One clause per host that failed or answered badly (`bad`: why, or None if it did not);
    None when every host is fine."""
    problems = []
    for answer in answers:
        why = answer.error.message if answer.error else bad(answer.value) if answer.value else None
        if why is not None:
            problems.append(f"{answer.host}: {why}")
    return "; ".join(problems) or None


def _settle(
    hosts: list[OnHost], *, keep: bool, outcome: str, reason: str | None
) -> list[Answer[SettleAnswer]]:
    """The env's verdict to every host at once (a host cut off meanwhile settles it itself:
    its agent undoes what it has not been told to keep)."""
    verdict: SettleRequest = {"keep": keep, "outcome": outcome, "reason": reason}
    return concurrently(hosts, lambda h: h.name, lambda h: h.op.call("settle", GO_SETTLE(verdict)))


def phase(
    ctx: Context, hosts: list[OnHost], name: str, work: Callable[[OnHost], T]
) -> list[Answer[T]]:
    """One phase on every host at once, reported as one step."""
    started = time.monotonic()
    answers = concurrently(hosts, lambda h: h.name, work)
    ctx.reporter.step(name, time.monotonic() - started, f"{len(hosts)} hosts")
    pause_for_tests(name)
    return answers


def everywhere(hosts: list[OnHost], what: str, work: Callable[[OnHost], T]) -> list[T]:
    """`work` on every host at once; a failure anywhere fails the deploy, naming each host
    (the first error's kind, hint and exit code stand for them all)."""
    return values(concurrently(hosts, lambda h: h.name, work), what)


@contextmanager
def closing(hosts: list[OnHost]) -> Iterator[None]:
    """Every host's operation closed at the end: locks back in the reverse order of taking."""
    try:
        yield
    finally:
        for host in reversed(hosts):
            with suppress(ReleaseError):
                host.op.close()
