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
from release.hosts.everywhere import OnHost, closing, everywhere, go_live
from release.hosts.fleet import contexts
from release.hosts.history import last_deployed_first
from release.hosts.host import HostState
from release.hosts.notify import tell
from release.hosts.operation import Operation, require_setup
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
    if env.several:
        return _rollback_everywhere(ctx, to)
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


def _rollback_everywhere(ctx: Context, to: str | None) -> DeployResult:
    """Every host of the env back to one release, all or nothing (the phases of a deploy to
    several hosts, `everywhere.go_live`): the same target on every host, or a refusal."""
    env, reporter = ctx.env, ctx.reporter
    if ctx.options.forced is not None:
        raise UsageError(
            f"FORCE=1 rollbacks are not built for an env of several hosts ({env.name})",
            hint="roll forward with make deploy instead",
            env=env.name,
        )
    started = time.monotonic()
    units = render_units(ctx.root, env)
    hosts = [OnHost(Operation(on, "rollback", units)) for on in contexts(ctx)]
    with closing(hosts):
        # Where each host would go, read before any lock: bad input changes nothing anywhere.
        _same_everywhere(hosts, everywhere(hosts, "rollback", lambda h: _target(h, to)))
        states = []
        for host in hosts:
            host.state = host.op.take_lock(f"rollback{' to ' + to if to else ''}")
            require_setup(host.state, host.op.env)
            states.append(host.state)
        target = _same_everywhere(hosts, [pick_target(state, to) for state in states])
        version = states[0].version_of(target) or "?"
        for host, state in zip(hosts, states, strict=True):
            host.op.context.update(
                {"version": version, "sha": target, "previous_sha": state.current, "source": "host"}
            )
        outcome, reason = go_live(ctx, hosts, target, version)
        told = f"{version} ({target[:12]})"
        if outcome != SUCCEEDED:
            tell(env, "rollback to", told, f"failed: {reason}", started=started, warn=reporter.note)
            raise OperationFailed(f"rollback to {told} failed: {reason}", env=env.name)
        tell(env, "rollback to", told, "succeeded", started=started, warn=reporter.note)
        return DeployResult(SUCCEEDED, version, target, states[0].current)


def _target(host: OnHost, to: str | None) -> str:
    """Where this host would roll back to, read before the lock (checked again under it)."""
    state = host.op.connect().state({"events": True, "details": True})
    host.op.settings = require_no_drift(host.op.env, state, apply=host.op.ctx.options.apply_units)
    chosen = pick_target(state, to)
    require_runnable(state, chosen)
    require_readable(state, chosen, None)
    return chosen


def _same_everywhere(hosts: list[OnHost], targets: list[str]) -> str:
    """The one release every host would go back to, or a refusal naming where they differ."""
    if len(set(targets)) > 1:
        where = ", ".join(f"{h.name} to {t[:12]}" for h, t in zip(hosts, targets, strict=True))
        raise UsageError(
            f"the hosts would roll back to different releases ({where})",
            hint="name the one for all with TO=<version>",
            env=hosts[0].op.env.name,
        )
    return targets[0]
