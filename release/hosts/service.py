"""Day-to-day operations on a deployed environment: restart, stop, logs, unlock."""

from __future__ import annotations

import shlex
from collections.abc import Callable

from release.agent.protocol import RESTART, STOP, SUCCEEDED, UNLOCK, RestartRequest
from release.errors import ReleaseError, UsageError
from release.hosts.context import Context
from release.hosts.environments import Environment
from release.hosts.fleet import contexts, each, values
from release.hosts.lock import describe, holder_gone
from release.hosts.operation import Operation, reading
from release.hosts.units import render_units, require_no_drift


def restart(ctx: Context) -> str:
    """Restart the current release and hold it to the health gate (on several hosts, one host
    after the other in the env's order, stopping at the first that fails)."""
    env = ctx.env
    if env.several:
        return "; ".join(_rolling(ctx, "restart", restart))
    with Operation(ctx, "restart", render_units(ctx.root, env)) as op:
        # A changed set-up is refused before the lock: the host stays as it was.
        op.settings = require_no_drift(
            env, op.connect().state({"details": True}), apply=ctx.options.apply_units
        )
        return _restart(op, env)


def _restart(op: Operation, env: Environment) -> str:
    with op.locked("restart") as state:
        if state.current is None:
            raise UsageError(f"nothing is deployed to {env.name}", hint="make deploy first")
        version = state.version_of(state.current)
        op.context.update({"version": version, "sha": state.current, "previous_sha": state.current})
        request: RestartRequest = {
            "version": version,
            "sha": state.current,
            "timeout": env.health_timeout,
            "units": op.units,
            "settings": op.settings or {},
        }
        timeout = f"timeout {env.health_timeout:.0f} s"
        gate = op.step("restart + health", RESTART(request), timeout, recorded_as="health")
        op.settle("restart", gate)
        return f"{version} ({state.current[:12]})"


def stop(ctx: Context) -> None:
    """Stop the service (it stays enabled and starts again at boot or on deploy/restart); on
    every host of the env at once."""
    if ctx.env.several:
        values(each(ctx, stop), "stop")
        return
    env = ctx.env
    with (
        Operation(ctx, "stop") as op,
        op.locked("stop", needs_setup=False) as state,
    ):
        op.context.update({"sha": state.current, "version": state.version_of(state.current)})
        op.step("stop", STOP({}), env.unit)
        op.finish = op.finish_event(SUCCEEDED)


def logs(ctx: Context, lines: int, follow: bool) -> int:
    """The unit's journal, passed straight through (followed with `follow`); its exit code.
    On several hosts each line starts with its host's name: one host after the other, or all
    at once when following."""
    command = f"journalctl -u {ctx.env.unit}.service -n {int(lines)} --no-pager -o short-iso" + (
        " -f" if follow else ""
    )
    if not ctx.env.several:
        with reading(ctx, "logs") as host:
            return host.remote.stream(command)

    def one(on: Context) -> int:
        named = f"{command} | sed -u {shlex.quote('s|^|' + on.env.host + ': |')}"
        with reading(on, "logs") as host:
            return host.remote.stream(named)

    codes = values(each(ctx, one), "logs") if follow else [one(on) for on in contexts(ctx)]
    return max(codes)


def _rolling(ctx: Context, what: str, work: Callable[[Context], str]) -> list[str]:
    """`work` on each host in the env's order; the first failure ends it, named."""
    done: list[str] = []
    for on in contexts(ctx):
        try:
            done.append(f"{on.env.host}: {work(on)}")
        except ReleaseError as exc:
            untouched = ctx.env.hosts[len(done) + 1 :]
            exc.message = f"{what} failed on {on.env.host}: {exc.message}" + (
                f" ({', '.join(untouched)} left as they were)" if untouched else ""
            )
            raise
    return done


def unlock(ctx: Context, force: bool) -> str:
    """Clear the env lock only once its holder is known to be gone (or FORCE=1 is given); on
    each host of the env."""
    env = ctx.env
    if env.several:
        cleared = values(each(ctx, lambda on: unlock(on, force)), "unlock")
        return "; ".join(f"{h}: {c}" for h, c in zip(env.hosts, cleared, strict=True))
    with reading(ctx, "unlock") as host:
        holder = host.state().lock
        if holder is None:
            return f"{env.name} is not locked"
        who = describe(holder)
        gone = holder_gone(holder)
        if gone is False:
            raise UsageError(
                f"{env.name} is locked by {who}, which is still running",
                hint="wait for it to finish, or stop that process first",
            )
        if gone is None and not force:
            raise UsageError(
                f"{env.name} is locked by {who}; it ran on another machine so it cannot be "
                "checked from here",
                hint=f"confirm that process is gone, then make unlock ENV={env.name} FORCE=1",
            )
        host.call(UNLOCK({"force": True}))
        return f"removed the lock held by {who}" + (" (stale: its process is gone)" if gone else "")
