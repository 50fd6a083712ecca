"""What a deploy would do, worked out before it does anything: `make plan`, and the header
`make deploy` prints before it acts. Read-only: no lock, nothing written."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from release.agent import contract as contracts
from release.agent.protocol import FINISH, SUCCEEDED, DataContract, EventVersion, LogRecord
from release.agent.prune import doomed
from release.artifacts.artifact import Artifact, contract_of, targets_of
from release.artifacts.changelog import section
from release.artifacts.git import Git
from release.artifacts.targets import describe
from release.errors import GitError, UnsupportedHost
from release.hosts.environments import Environment
from release.hosts.history import last_success_for
from release.hosts.host import HostState
from release.hosts.units import drift, host_settings

#: Events per second a read model is built from on the test node (make bench: 47 000 on
#: 2026-12-01; docs/PERFORMANCE.md).
REBUILD_RATE = 45000.0


@dataclass(frozen=True)
class Plan:
    """A deploy's consequences, as `make plan` shows them."""

    env: str
    #: The host's python3, machine and glibc (None: the host did not say).
    host: str | None
    #: What the artifact's wheels serve.
    offered: str
    #: Why the host cannot run the artifact (None: it can).
    unserved: str | None
    current_sha: str | None
    current_version: str | None
    deployed_by: str | None
    deployed_at: str | None
    target_sha: str
    target_version: str
    noop: bool
    commits: list[str]
    changelog: dict[str, str]
    lock_changed: bool
    dependencies: dict[str, list[str]]
    units_changed: list[str]
    projections_rebuild: bool
    projections: str
    events_in_log: int | None
    rebuild_seconds: float | None
    event_schema_changes: list[str]
    rollback_safe: bool
    rollback_problem: str | None
    prune: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)

    def header(self) -> list[str]:
        """The few lines a deploy prints before it acts."""
        was = f"{self.current_version} ({self.current_sha[:12]})" if self.current_sha else "nothing"
        lines = [f"plan: {was} -> {self.target_version} ({self.target_sha[:12]})"]
        if self.host:
            lines.append(f"host: {self.host}; artifact: {self.offered}")
        if self.noop:
            return [*lines, "already current: nothing to build or switch"]
        if self.commits:
            lines.append(f"{len(self.commits)} commit(s); lock {_changed(self.lock_changed)}")
        for kind in ("added", "removed", "changed"):
            if self.dependencies[kind]:
                lines.append(f"dependencies {kind}: {', '.join(self.dependencies[kind])}")
        if self.units_changed:
            lines += [f"host set-up changes: {change}" for change in self.units_changed]
        if self.projections_rebuild:
            estimate = f", about {self.rebuild_seconds:.0f} s" if self.rebuild_seconds else ""
            lines.append(f"read model rebuilt: {self.projections}{estimate} (MIGRATE=1)")
        lines += [f"events: {change}" for change in self.event_schema_changes]
        lines.append(
            "rollback to the current release afterwards: "
            + ("safe" if self.rollback_safe else f"NOT safe: {self.rollback_problem}")
        )
        if self.prune:
            lines.append(f"retention then removes: {', '.join(s[:12] for s in self.prune)}")
        return lines


def _changed(flag: bool) -> str:
    return "changed" if flag else "unchanged"


def plan(
    root: Path, env: Environment, artifact: Artifact, state: HostState, *, changelog: bool = True
) -> Plan:
    """Compare what runs on the host (`state`) with what deploying `artifact` would give;
    `changelog=False` leaves out the CHANGELOG sections (a deploy's header does not show them)."""
    current = state.current if state.current in state.releases else None
    target_contract = contract_of(artifact.manifest)
    current_contract = state.releases[current].data_contract if current else None
    last = last_success_for(state.log, current)
    lock_now = (artifact.directory / "requirements.lock").read_text(encoding="utf-8")
    rebuild = needs_rebuild(state, current_contract, target_contract)
    problem = _rollback_problem(state, current, current_contract, target_contract)
    return Plan(
        env=env.name,
        host=describe(state.platform) if state.platform else None,
        offered=str(targets_of(artifact.manifest)),
        unserved=unserved(artifact, state),
        current_sha=current,
        current_version=state.version_of(current),
        deployed_by=last.operator if last else None,
        deployed_at=last.ended_at if last else None,
        target_sha=artifact.commit,
        target_version=artifact.version,
        noop=current == artifact.commit,
        commits=_commits(Git(root), current, artifact.commit),
        changelog=_changelog(Git(root), artifact, state.version_of(current)) if changelog else {},
        lock_changed=state.current_lock is not None and state.current_lock != lock_now,
        dependencies=_dependencies(state.current_lock or "", lock_now),
        units_changed=drift(host_settings(env), state),
        projections_rebuild=rebuild,
        projections=(
            f"projections schema {current_contract['projections'] if current_contract else '-'}"
            f" -> {target_contract['projections']}"
        ),
        events_in_log=state.event_count,
        rebuild_seconds=(state.event_count / REBUILD_RATE)
        if rebuild and state.event_count is not None
        else None,
        event_schema_changes=_event_changes(current_contract, target_contract),
        rollback_safe=problem is None,
        rollback_problem=problem,
        prune=_pruned(env, state, artifact.commit),
    )


def unserved(artifact: Artifact, state: HostState) -> str | None:
    """Why the host cannot run the artifact's release (None: it can, or it did not say)."""
    return targets_of(artifact.manifest).refusal(state.platform) if state.platform else None


def require_served(env: Environment, artifact: Artifact, state: HostState) -> None:
    """Refuse a host the artifact has no wheels for, before the lock and the upload."""
    reason = unserved(artifact, state)
    if reason is not None:
        raise UnsupportedHost(
            f"{artifact.version} cannot run on {env.host}: {reason}",
            hint="deploy to a host with one of those, or add the host's kind to "
            "[tool.helionyx.artifact] in pyproject.toml and cut a new release",
            env=env.name,
        )


@contextlib.contextmanager
def offering(artifact: Artifact) -> Iterator[None]:
    """A host refused before its state is read (no interpreter, or one the agent cannot run
    on) is told what the artifact offers as well."""
    try:
        yield
    except UnsupportedHost as exc:
        offered = targets_of(artifact.manifest)
        raise UnsupportedHost(
            f"{exc.message}; {artifact.version} offers {offered}",
            hint=exc.hint,
            host=exc.host,
            env=exc.env,
        ) from None


def needs_rebuild(state: HostState, current: DataContract | None, target: DataContract) -> bool:
    """A read model must be built when the target's schema has none on the host yet and
    there is a running release whose data it must carry over."""
    if current is None:
        return False
    return target["projections"] != current["projections"] and (
        target["projections"] not in state.read_models
    )


def _rollback_problem(
    state: HostState, current: str | None, now: DataContract | None, target: DataContract
) -> str | None:
    """Why rolling back from the target to the current release would fail, if it would."""
    if current is None or now is None:
        return "there is no current release to roll back to"
    if not state.releases[current].runnable:
        python = state.releases[current].python
        return f"{current[:12]} was built for Python {python}, which the host no longer has"
    written: dict[str, EventVersion] = {
        kind: {"version": entry["writes"], "first_at": "the new release's first write"}
        for kind, entry in target["events"].items()
    }
    for kind, seen in state.event_versions.items():
        if seen["version"] > written.get(kind, {"version": 0, "first_at": ""})["version"]:
            written[kind] = seen
    problems = contracts.unreadable(now, written)
    version = state.version_of(current)
    return contracts.explain(f"{version} ({current[:12]})", problems[0]) if problems else None


def _commits(git: Git, current: str | None, target: str) -> list[str]:
    """`<short sha> <subject>` of each commit after the current release up to the target."""
    if current is None:
        return []
    try:
        out = git.run("log", "--format=%h %s", f"{current}..{target}")
    except GitError:
        return []  # not in this repository (or not a repository): nothing to list
    return [line for line in out.splitlines() if line]


def _changelog(git: Git, artifact: Artifact, current_version: str | None) -> dict[str, str]:
    """The target's CHANGELOG sections after the current version (from the target's commit)."""
    try:
        text = git.run("show", f"{artifact.commit}:CHANGELOG.md")
    except GitError:
        return {}
    floor = _version(current_version)
    sections = {}
    for name in re.findall(r"^## \[([^\]]+)\]", text, re.MULTILINE):
        found = _version(name)
        if found is None or (floor is not None and found <= floor):
            continue
        if found <= Version(artifact.version):
            sections[name] = section(text, name) or ""
    return sections


def _version(text: str | None) -> Version | None:
    try:
        return Version(text) if text else None
    except InvalidVersion:
        return None


_REQUIREMENT = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;\\]+)", re.MULTILINE)


def _dependencies(before: str, after: str) -> dict[str, list[str]]:
    """Packages a lock adds, removes or moves to another version."""
    old = {n.lower(): v for n, v in _REQUIREMENT.findall(before)}
    new = {n.lower(): v for n, v in _REQUIREMENT.findall(after)}
    return {
        "added": sorted(f"{n} {new[n]}" for n in new.keys() - old.keys()),
        "removed": sorted(f"{n} {old[n]}" for n in old.keys() - new.keys()),
        "changed": sorted(
            f"{n} {old[n]} -> {new[n]}" for n in new.keys() & old.keys() if old[n] != new[n]
        ),
    }


def _event_changes(now: DataContract | None, target: DataContract) -> list[str]:
    """`<type>: writes version a -> b` for each event type whose written version changes."""
    changes = []
    for kind, entry in sorted(target["events"].items()):
        before = contracts.reads(now, kind) if now else None
        was = now["events"].get(kind, {"writes": before or 1})["writes"] if now else None
        if was != entry["writes"]:
            changes.append(f"{kind}: writes version {was or '-'} -> {entry['writes']}")
    return changes


def _pruned(env: Environment, state: HostState, target: str) -> list[str]:
    """What retention removes once the target is live (the host's own policy, applied here to
    the log as it would then read)."""
    after: list[LogRecord] = [
        *state.log,
        {"step": FINISH, "action": "deploy", "sha": target, "outcome": SUCCEEDED},
    ]
    releases = [*state.releases, *([] if target in state.releases else [target])]
    protected = {target} | ({state.current} if state.current else set())
    return doomed(releases, after, env.keep_releases, protected)
