"""Rollback: flip `current` back to the previous good release (or a named one), restart, check."""

from __future__ import annotations

import time

from release.agent.contract import explain, unreadable
from release.agent.deploylog import failed_shas
from release.agent.protocol import ACTIVATE, FAILED, SUCCEEDED, ActivateRequest
from release.artifacts.store import ReleaseInfo, resolve
from release.errors import NotFound, OperationFailed, UsageError
from release.hosts.context import Context
from release.hosts.deploy import DeployResult
from release.hosts.history import last_deployed_first
from release.hosts.host import HostState
from release.hosts.notify import tell
from release.hosts.operation import Operation
from release.hosts.units import render_units, require_no_drift


def pick_target(state: HostState, to: str | None) -> str:
    """The SHA to roll back to: `to` (version, tag or SHA prefix) or the previous good release."""
    existing = (
        ", ".join(
            f"{state.version_of(s)} ({s[:12]})"
            for s in last_deployed_first(state)
            if s != state.current
        )
        or "none"
    )
    if to:
        on_host = [
            ReleaseInfo(r.version or "", r.tag, sha, r.built_at or "", 0)
            for sha, r in state.releases.items()
        ]
        try:
            target = resolve(on_host, to).sha
        except (NotFound, UsageError):
            raise UsageError(
                f"no single release {to!r} on the host", hint=f"the host holds: {existing}"
            ) from None
    else:
        failed = failed_shas(state.log)
        candidates = [state.previous] if state.previous else []
        candidates += [
            s for s in last_deployed_first(state) if s not in (state.current, state.previous)
        ]
        good = [s for s in candidates if s and s in state.releases and s not in failed]
        if not good:
            raise UsageError(
                "there is no previous good release to roll back to",
                hint=f"the host holds: {existing}",
            )
        target = good[0]
    if target == state.current:
        raise UsageError(f"{state.version_of(target)} ({target[:12]}) is already current")
    return target


def require_runnable(state: HostState, target: str) -> None:
    """Refuse a target whose venv names an interpreter the host no longer has (its python3
    was upgraded since the release was built): it could not start."""
    release = state.releases[target]
    if release.runnable:
        return
    now = f"python3 is now {state.platform['python']}" if state.platform else "it is gone"
    raise UsageError(
        f"{release.version} ({target[:12]}) was built for Python {release.python}, which the "
        f"host no longer runs it with ({now}): it could not start",
        hint=f"deploy it instead (make deploy VERSION={release.version}): its venv is rebuilt "
        "for the host's Python from the artifact",
    )


def require_readable(state: HostState, target: str, forced: str | None) -> None:
    """Refuse a target that cannot read the event log the env has now, unless forced."""
    release = state.releases[target]
    problems = unreadable(release.data_contract, state.event_versions)
    if problems and not forced:
        raise UsageError(
            explain(f"{release.version} ({target[:12]})", problems[0]),
            hint='roll forward with make deploy instead; FORCE=1 REASON="…" rolls back all the '
            "same (recorded): the release then serves without the events it cannot read, from "
            "a read model of its own, until a release that reads them is deployed",
        )


def rollback(ctx: Context, to: str | None) -> DeployResult:
    """Roll `env` back; exits through OperationFailed if the target is not healthy either.

    FORCE=1 (the operator's reason) overrides the check that the target can read the log."""
    env, reporter, forced = ctx.env, ctx.reporter, ctx.options.forced
    if forced is not None and not forced.strip():
        raise UsageError("FORCE=1 needs a reason", hint='add REASON="why" (it is recorded)')
    started = time.monotonic()
    with Operation(ctx, "rollback", render_units(ctx.root, env)) as op:
        host = op.connect()
        # Refuse a rollback with nowhere to go before taking the lock: bad input changes nothing
        # (not even the env directory's mtime, which taking the lock would).
        before = host.state({"events": True, "details": True})
        op.settings = require_no_drift(env, before, apply=ctx.options.apply_units)
        chosen = pick_target(before, to)
        require_runnable(before, chosen)
        require_readable(before, chosen, forced)
        with op.locked(f"rollback{' to ' + to if to else ''}") as state:
            target = pick_target(state, to)
            version = state.version_of(target)
            if forced:
                op.context["forced"] = forced
            op.context.update(
                {"version": version, "sha": target, "previous_sha": state.current, "source": "host"}
            )
            request: ActivateRequest = {
                "units": op.units,
                "settings": op.settings or {},
                "sha": target,
                "previous": state.current,
                "version": version,
                "timeout": env.health_timeout,
            }
            if forced:
                request["forced"] = forced
            switch = f"current -> releases/{target[:12]}, health gate"
            gate = op.step("switch + restart", ACTIVATE(request), switch, recorded_as="activate")
            if gate["healthy"]:
                op.finish = op.finish_event(SUCCEEDED)
                told = f"{version} ({target[:12]})"
                tell(env, "rollback to", told, "succeeded", started=started, warn=reporter.note)
                return DeployResult(SUCCEEDED, version or "?", target, state.current)
            assert op.host is not None
            journal = op.host.journal(20)
            reason = gate.get("reason", "unhealthy")
            if state.current is not None:
                # Never leave the service on a broken release when the one we left was running.
                back = op.call(
                    "undo",
                    ACTIVATE(
                        {
                            "units": op.units,
                            "settings": op.settings or {},
                            "previous": state.previous,
                            "version": state.version_of(state.current),
                            "sha": state.current,
                            "timeout": env.health_timeout,
                        }
                    ),
                )
                reason += f"; restored {state.current[:12]}" + (
                    "" if back["healthy"] else " (unhealthy)"
                )
            op.finish = op.finish_event(FAILED, reason)
            told = f"{version} ({target[:12]})"
            tell(env, "rollback to", told, f"failed: {reason}", started=started, warn=reporter.note)
            raise OperationFailed(
                f"rollback to {version} ({target[:12]}) is not healthy: {reason}",
                details=journal,
                env=env.name,
                host=env.host,
            )
