"""What `make status` and `make releases` report: the truth from the host, read in one call."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from release.artifacts.git import Git
from release.artifacts.targets import describe
from release.errors import GitError, ReleaseError
from release.hosts.context import Context
from release.hosts.environments import Environment
from release.hosts.fleet import Answer, each
from release.hosts.history import last_success_for, release_states
from release.hosts.host import HostState
from release.hosts.lock import describe_now
from release.hosts.operation import reading
from release.hosts.units import drift, host_settings


@dataclass(frozen=True)
class Status:
    """An environment as it is now."""

    env: str
    host: str
    unit: str
    version: str | None
    sha: str | None
    deployed_at: str | None
    deployed_by: str | None
    deployed_from: str | None
    healthy: bool
    problem: str | None
    service: dict[str, Any]
    health: dict[str, Any]
    releases: list[dict[str, Any]]
    lock: str | None
    leftovers: list[str]
    #: Units on the host that differ from what a deploy from here would install.
    drift: list[str] = field(default_factory=list)
    #: The host's interpreter, machine and glibc (`CPython 3.11.2 on x86_64 with glibc 2.36`).
    interpreter: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def judge(state: HostState) -> tuple[bool, str | None]:
    """Healthy means: active, ready, and serving exactly the release `current` names."""
    unit = state.unit
    if state.current is None:
        return False, "nothing is deployed"
    running = state.releases.get(state.current)
    if running is not None and not running.runnable:
        return False, (
            f"current {running.version} ({state.current[:12]}) was built for Python "
            f"{running.python}, which the host no longer has (make deploy VERSION="
            f"{running.version} rebuilds it)"
        )
    if unit.get("ActiveState") != "active":
        return (
            False,
            f"the service is {unit.get('ActiveState', 'unknown')} ({unit.get('SubState', '?')})",
        )
    ready = state.health.get("ready_body")
    if state.health.get("ready_status") != 200 or not isinstance(ready, dict):
        reason = ready.get("reason") if isinstance(ready, dict) else state.health.get("error")
        return False, f"/health/ready is not 200 ({reason or state.health.get('ready_status')})"
    if ready.get("commit") != state.current:
        return False, (
            f"current is {state.current[:12]} but the service runs {str(ready.get('commit'))[:12]} "
            "(restart pending: make restart or make deploy)"
        )
    return True, None


def status_of(env: Environment, state: HostState, units: dict[str, str] | None = None) -> Status:
    """Combine host state and the deploy log (and, given the rendered `units`, any set-up
    drift) into a Status."""
    healthy, problem = judge(state)
    last = last_success_for(state.log, state.current)
    unit = state.unit
    return Status(
        env=env.name,
        host=env.host,
        unit=f"{env.unit}.service",
        version=state.version_of(state.current),
        sha=state.current,
        deployed_at=last.ended_at if last else None,
        deployed_by=last.operator if last else None,
        deployed_from=last.source if last else None,
        healthy=healthy,
        problem=problem,
        service={
            "state": unit.get("ActiveState"),
            "sub_state": unit.get("SubState"),
            "pid": int(unit.get("MainPID", "0") or 0),
            "uptime_seconds": float(unit["uptime_seconds"]) if "uptime_seconds" in unit else None,
            "restarts": int(unit.get("NRestarts", "0") or 0),
            "handing_over": handing_over(state.health.get("body"), unit.get("MainPID")),
        },
        health={"status": state.health.get("status"), "body": state.health.get("body")},
        releases=release_states(state),
        lock=describe_now(state.lock) if state.lock else None,
        leftovers=state.partials,
        drift=drift(host_settings(env), state) if units is not None else [],
        interpreter=describe(state.platform) if state.platform else None,
    )


def handing_over(body: object, main_pid: str | None) -> str | None:
    """The hand-over under way, as the running process reports it: both processes."""
    report = body.get("handover") if isinstance(body, dict) else None
    last = report.get("last") if isinstance(report, dict) else None
    if not isinstance(last, dict) or last.get("state") not in ("starting", "ready"):
        return None
    commit = str(last.get("commit"))[:12]
    return f"to {commit} ({last.get('state')}, pid {last.get('pid')}) beside pid {main_pid}"


def read_status(ctx: Context, units: dict[str, str] | None = None) -> Status:
    """Connect and read the status of one environment (with set-up drift, given `units`)."""
    with reading(ctx, "status") as host:
        return status_of(ctx.env, host.state({"probe": True, "details": units is not None}), units)


@dataclass(frozen=True)
class EnvStatus:
    """An env of several hosts as it is now: each host's status (or why it could not be read)
    and one verdict: healthy only if every host is, on the same release."""

    env: str
    healthy: bool
    problem: str | None
    #: The release every host runs (None when they differ or nothing is deployed).
    version: str | None
    sha: str | None
    hosts: list[Answer[Status]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "env": self.env,
            "healthy": self.healthy,
            "problem": self.problem,
            "version": self.version,
            "sha": self.sha,
            "hosts": [
                {
                    "host": row.host,
                    "status": row.value.to_dict() if row.value else None,
                    "error": str(row.error) if row.error else None,
                }
                for row in self.hosts
            ],
        }


def read_env(ctx: Context, units: dict[str, str] | None = None) -> EnvStatus:
    """Every host of the env, read at once (an unreachable one hides none of the others)."""
    rows = each(ctx, lambda on: read_status(on, units))
    return verdict(ctx.env.name, rows)


def verdict(env: str, rows: list[Answer[Status]]) -> EnvStatus:
    """The env's verdict from its hosts' statuses."""
    problems = [f"{row.host} could not be read: {row.error}" for row in rows if row.error]
    read = [row.value for row in rows if row.value is not None]
    shas = {status.sha for status in read}
    if len(shas) > 1:
        counts = {sha: sum(1 for s in read if s.sha == sha) for sha in shas}
        usual = max(sorted(shas, key=str), key=lambda sha: counts[sha])
        most = next(s for s in read if s.sha == usual)
        problems += [
            f"{s.host} runs {_release(s)}, not {_release(most)} like the others"
            for s in read
            if s.sha != usual
        ]
    problems += [f"{s.host}: {s.problem}" for s in read if not s.healthy and s.problem]
    one = read[0] if len(shas) == 1 and len(read) == len(rows) else None
    return EnvStatus(
        env=env,
        healthy=not problems and all(s.healthy for s in read),
        problem="; ".join(problems) or None,
        version=one.version if one else None,
        sha=one.sha if one else None,
        hosts=rows,
    )


@dataclass(frozen=True)
class Overview:
    """One env in `make status` without ENV: its status, or why it could not be read."""

    env: str
    status: Status | None
    error: str | None
    #: How it compares with the env it `requires`: `same as staging`, `2 commits behind staging`.
    behind: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "env": self.env,
            "status": self.status.to_dict() if self.status else None,
            "error": self.error,
            "behind": self.behind,
        }


def read_all(ctx: Context, envs: list[Environment]) -> list[Overview]:
    """Every env's status, read concurrently (one unreachable host hides none of the others)."""

    def one(env: Environment) -> Status | str:
        if env.several:
            return _summary(read_env(ctx.on(env)))
        try:
            return read_status(ctx.on(env))
        except ReleaseError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=max(len(envs), 1)) as pool:
        found = dict(zip([e.name for e in envs], pool.map(one, envs), strict=True))
    rows = []
    for env in envs:
        got = found[env.name]
        status = got if isinstance(got, Status) else None
        upstream = found.get(env.requires or "")
        behind = None
        if env.requires and status is not None:
            behind = _behind(Git(ctx.root), status, upstream, env.requires)
        rows.append(Overview(env.name, status, None if status else str(got), behind))
    return rows


def _release(status: Status) -> str:
    return f"{status.version or '-'} ({(status.sha or 'none')[:12]})"


def _summary(whole: EnvStatus) -> Status | str:
    """An env of several hosts as one overview line: its first readable host's status with
    the env's verdict (every host named in `host`)."""
    first = next((row.value for row in whole.hosts if row.value is not None), None)
    if first is None:
        return whole.problem or "no host could be read"
    return replace(
        first,
        host=", ".join(row.host for row in whole.hosts),
        version=whole.version,
        sha=whole.sha,
        healthy=whole.healthy,
        problem=whole.problem,
    )


def _behind(git: Git, status: Status, upstream: Status | str | None, name: str) -> str:
    """How `status` compares with the env it is promoted from."""
    if not isinstance(upstream, Status) or upstream.sha is None:
        return f"{name} unknown"
    if status.sha == upstream.sha:
        return f"same as {name}"
    if status.sha is None:
        return f"nothing deployed; {name} runs {upstream.version}"
    try:
        count = git.count_since(status.sha, upstream.sha)
    except GitError:
        return f"differs from {name}"
    return f"{count} commit{'s' if count != 1 else ''} behind {name}"
