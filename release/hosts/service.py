"""Day-to-day operations on a deployed environment: restart, stop, logs, unlock."""

from __future__ import annotations

from release.agent.protocol import RESTART, STOP, SUCCEEDED, UNLOCK, RestartRequest
from release.errors import UsageError
from release.hosts.context import Context
from release.hosts.environments import Environment
from release.hosts.lock import describe, holder_gone
from release.hosts.operation import Operation, reading
from release.hosts.units import render_units, require_no_drift


def restart(ctx: Context) -> str:
    """Restart the current release and hold it to the health gate."""
    env = ctx.env
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
    """Stop the service (it stays enabled and starts again at boot or on deploy/restart)."""
    env = ctx.env
    with (
        Operation(ctx, "stop") as op,
        op.locked("stop", needs_setup=False) as state,
    ):
        op.context.update({"sha": state.current, "version": state.version_of(state.current)})
        op.step("stop", STOP({}), env.unit)
        op.finish = op.finish_event(SUCCEEDED)


def logs(ctx: Context, lines: int, follow: bool) -> int:
    """The unit's journal, passed straight through (followed with `follow`); its exit code."""
    command = f"journalctl -u {ctx.env.unit}.service -n {int(lines)} --no-pager -o short-iso" + (
        " -f" if follow else ""
    )
    with reading(ctx, "logs") as host:
        return host.remote.stream(command)


def unlock(ctx: Context, force: bool) -> str:
    """Clear the env lock only once its holder is known to be gone (or FORCE=1 is given)."""
    env = ctx.env
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
