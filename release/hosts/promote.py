"""Promotion: deploy to one env exactly the release another serves now — the same published
artifact, verified again from the store, never rebuilt, through the normal deploy path."""

from __future__ import annotations

from release.artifacts.store import Store
from release.errors import UsageError
from release.hosts.context import Context
from release.hosts.deploy import DeployResult, deploy
from release.hosts.environments import Environment
from release.hosts.operation import reading
from release.hosts.status import judge


def promote(ctx: Context, source: Environment, store: Store) -> DeployResult:
    """Deploy to the context's env the SHA `source` serves, if `source` is healthy on a release."""
    if source.name == ctx.env.name:
        raise UsageError(f"FROM and TO are both {source.name}", hint="promote FROM=staging TO=live")
    with reading(ctx.on(source), "promote") as host:
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
    ctx.reporter.note(f"promoting {release.version} ({state.current[:12]}) from {source.name}")
    return deploy(ctx, state.current, store, promoted_from=source.name)
