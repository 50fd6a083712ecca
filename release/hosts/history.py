"""The deploy log as the operator reads it: who put what live when, and each release's state.
The rules themselves live with the log's one owner, `release.agent.deploylog`."""

from __future__ import annotations

from dataclasses import dataclass

from release.agent import deploylog
from release.agent.protocol import FAILED, LogRecord
from release.hosts.host import HostState


@dataclass(frozen=True)
class Deployment:
    """The record of the operation that put a release live."""

    action: str
    outcome: str
    version: str | None
    sha: str
    operator: str
    source: str | None
    ended_at: str

    @classmethod
    def of(cls, record: LogRecord) -> Deployment:
        """From a deploy-log record."""
        return cls(
            action=str(record.get("action")),
            outcome=str(record.get("outcome")),
            version=record.get("version"),
            sha=str(record.get("sha")),
            operator=str(record.get("operator")),
            source=record.get("source"),
            ended_at=str(record.get("ended_at")),
        )


def last_success_for(log: list[LogRecord], sha: str | None) -> Deployment | None:
    """The operation that last switched `sha` in (a no-op switches nothing)."""
    record = deploylog.last_switched_in(log, sha)
    return Deployment.of(record) if record is not None else None


def last_deployed_first(state: HostState) -> list[str]:
    """Releases on the host, most recently deployed first (by log position, not mtimes)."""
    by_build = sorted(state.releases, key=lambda s: state.releases[s].built_at or "", reverse=True)
    return deploylog.last_deployed_first(state.log, by_build)


def release_states(state: HostState) -> list[dict[str, str | None]]:
    """`[{sha, version, state}]`, newest first; state is current, previous, failed or available."""
    failed = deploylog.failed_shas(state.log)
    rows: list[dict[str, str | None]] = []
    for sha in last_deployed_first(state):
        if sha == state.current:
            label = "current"
        elif sha in failed:
            label = FAILED
        elif sha == state.previous:
            label = "previous"
        else:
            label = "available"
        release = state.releases.get(sha)
        if release is not None and not release.runnable:
            label += f" (its Python {release.python} is gone: redeploy it)"
        rows.append({"sha": sha, "version": state.version_of(sha), "state": label})
    return rows
