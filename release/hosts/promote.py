"""Promotion: deploy to one env exactly the release another serves now — the same published
artifact, verified again from the store, never rebuilt, through the normal deploy path."""

from __future__ import annotations

from release.artifacts.store import Store
from release.errors import UsageError
from release.hosts import everywhere
from release.hosts.context import Context
from release.hosts.deploy import DeployResult
from release.hosts.environments import Environment
from release.hosts.fleet import each, values
from release.hosts.host import HostState
from release.hosts.operation import reading
from release.hosts.status import judge


def promote(ctx: Context, source: Environment, store: Store) -> DeployResult:
    """Deploy to the context's env the SHA `source` serves, if `source` is healthy on a release."""
    if source.name == ctx.env.name:
        raise UsageError(f"FROM and TO are both {source.name}", hint="promote FROM=staging TO=live")
    states = values(each(ctx.on(source), _probed), "promote")
    problems = [
        f"{host}: {problem}" if source.several else str(problem)
        for host, state in zip(source.hosts, states, strict=True)
        for healthy, problem in [judge(state)]
        if not healthy
    ]
    if not problems and len({s.current for s in states}) > 1:
        problems = ["its hosts run different releases"]
    state = states[0]
    if problems or state.current is None:
        raise UsageError(
            f"{source.name} is not healthy ({'; '.join(problems)}): nothing to promote",
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
    return everywhere.deploy(ctx, state.current, store, promoted_from=source.name)


def _probed(ctx: Context) -> HostState:
    with reading(ctx, "promote") as host:
        return host.state({"probe": True})
