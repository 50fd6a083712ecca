"""What `make status` and `make releases` report: the truth from the host, read in one call."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from release.hosts.environments import Environment
from release.hosts.history import last_success_for, release_states
from release.hosts.host import HostState
from release.hosts.lock import describe_now
from release.hosts.operation import RemoteFactory, reading
from release.hosts.remote import SshRemote


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def judge(state: HostState) -> tuple[bool, str | None]:
    """Healthy means: active, ready, and serving exactly the release `current` names."""
    unit = state.unit
    if state.current is None:
        return False, "nothing is deployed"
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


def status_of(env: Environment, state: HostState) -> Status:
    """Combine host state and the deploy log into a Status."""
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
        },
        health={"status": state.health.get("status"), "body": state.health.get("body")},
        releases=release_states(state),
        lock=describe_now(state.lock) if state.lock else None,
        leftovers=state.partials,
    )


def read_status(env: Environment, remote_factory: RemoteFactory = SshRemote) -> Status:
    """Connect and read the status of one environment."""
    with reading(env, remote_factory) as host:
        return status_of(env, host.state({"probe": True}))
