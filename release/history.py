"""Reading deploy-log.jsonl: who deployed what when, which releases failed, in what order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from release.host import HostState

FINISH = "finish"
#: The step that flips `current` in deploys made before the host finished them itself.
SWITCH = "switch"
SUCCEEDED = "succeeded"
ROLLED_BACK = "rolled_back"
FAILED = "failed"
NOOP = "noop"


@dataclass(frozen=True)
class Deployment:
    """The finish record of one deploy, rollback or restart."""

    action: str
    outcome: str
    version: str | None
    sha: str
    previous_sha: str | None
    operator: str
    source: str | None
    started_at: str
    ended_at: str
    reason: str | None

    @classmethod
    def of(cls, event: dict[str, Any]) -> Deployment:
        """From a log event."""
        return cls(
            action=str(event.get("action")),
            outcome=str(event.get("outcome")),
            version=event.get("version"),
            sha=str(event.get("sha")),
            previous_sha=event.get("previous_sha"),
            operator=str(event.get("operator")),
            source=event.get("source"),
            started_at=str(event.get("started_at")),
            ended_at=str(event.get("ended_at")),
            reason=event.get("reason"),
        )


def finishes(log: list[dict[str, Any]]) -> list[Deployment]:
    """Every finished operation, in log order (append order, whatever the clocks said)."""
    return [Deployment.of(e) for e in log if e.get("step") == FINISH]


def last_success_for(log: list[dict[str, Any]], sha: str | None) -> Deployment | None:
    """The operation that last switched `sha` in: a deploy or rollback that succeeded, or a
    switch whose operation was cut off before it could finish. A no-op switches nothing."""
    for event in reversed(log):
        if event.get("sha") != sha:
            continue
        step, outcome = event.get("step"), event.get("outcome")
        if step == FINISH and event.get("action") in ("deploy", "rollback"):
            if outcome == SUCCEEDED:
                return Deployment.of(event)
        elif step == SWITCH and outcome == "ok":
            return Deployment.of(event)
    return None


def failed_shas(log: list[dict[str, Any]]) -> set[str]:
    """Releases whose latest deploy failed its health gate (and were not healthy since)."""
    latest: dict[str, str] = {}
    for done in finishes(log):
        if done.action in ("deploy", "rollback", "restart"):
            latest[done.sha] = done.outcome
    return {sha for sha, outcome in latest.items() if outcome in (ROLLED_BACK, FAILED)}


def last_deployed_first(state: HostState) -> list[str]:
    """Releases on the host, most recently deployed first (by log position, not mtimes)."""
    rank: dict[str, int] = {}
    for position, event in enumerate(state.log):
        sha = event.get("sha")
        if isinstance(sha, str):
            rank[sha] = position
    shas = list(state.releases)
    return sorted(
        shas, key=lambda s: (rank.get(s, -1), state.releases[s].built_at or ""), reverse=True
    )


def release_states(state: HostState) -> list[dict[str, Any]]:
    """`[{sha, version, state}]`, newest first; state is current, previous, failed or available."""
    failed = failed_shas(state.log)
    rows = []
    for sha in last_deployed_first(state):
        if sha == state.current:
            label = "current"
        elif sha in failed:
            label = FAILED
        elif sha == state.previous:
            label = "previous"
        else:
            label = "available"
        rows.append({"sha": sha, "version": state.version_of(sha), "state": label})
    return rows
