"""Promotion: deploy to one env exactly the release another serves now — the same published
artifact, verified again from the store, never rebuilt, through the normal deploy path."""

from __future__ import annotations

from collections.abc import Callable

from release.artifacts.releasing import Workspace
from release.artifacts.store import Store
from release.errors import UsageError
from release.hosts.deploy import DeployResult, deploy
from release.hosts.environments import Environment
from release.hosts.operation import RemoteFactory, Reporter, reading
from release.hosts.remote import SshRemote
from release.hosts.status import judge
from release.progress import Progressable


def promote(
    ws: Workspace,
    source: Environment,
    target: Environment,
    store: Store,
    *,
    reporter: Reporter,
    progress: Progressable,
    remote_factory: RemoteFactory = SshRemote,
    wait: float = 0.0,
    forced: str | None = None,
    migrate: bool = False,
    peer: Callable[[str], Environment] | None = None,
    apply_units: bool = False,
) -> DeployResult:
    """Deploy to `target` the SHA `source` serves, if `source` is healthy on a published build."""
    if source.name == target.name:
        raise UsageError(f"FROM and TO are both {source.name}", hint="promote FROM=staging TO=live")
    with reading(source, remote_factory) as host:
        state = host.state({"probe": True})
    healthy, problem = judge(state)
    if not healthy or state.current is None:
        raise UsageError(
            f"{source.name} is not healthy ({problem}): nothing to promote",
            hint=f"make status ENV={source.name} shows why",
            env=source.name,
        )
    release = state.releases[state.current]
    if release.tag is None:
        raise UsageError(
            f"{source.name} runs an unpublished dev build ({release.version}): only releases "
            "are promoted",
            hint="cut a release (make release), publish it, deploy it to "
            f"{source.name}, then promote",
            env=source.name,
        )
    reporter.note(f"promoting {release.version} ({state.current[:12]}) from {source.name}")
    return deploy(
        ws,
        target,
        state.current,
        store,
        reporter=reporter,
        progress=progress,
        remote_factory=remote_factory,
        wait=wait,
        forced=forced,
        migrate=migrate,
        promoted_from=source.name,
        peer=peer,
        apply_units=apply_units,
    )
