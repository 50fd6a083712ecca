"""Day-to-day operations on a deployed environment: restart, stop, logs, unlock."""

from __future__ import annotations

from pathlib import Path

from release.agent.protocol import RESTART, STOP, SUCCEEDED, UNLOCK
from release.errors import UsageError
from release.hosts.environments import Environment
from release.hosts.lock import describe, holder_gone
from release.hosts.operation import Operation, RemoteFactory, Reporter, reading
from release.hosts.remote import SshRemote
from release.hosts.units import render_units, require_no_drift


def restart(
    root: Path,
    env: Environment,
    reporter: Reporter,
    remote_factory: RemoteFactory = SshRemote,
    *,
    wait: float = 0.0,
    apply_units: bool = False,
) -> str:
    """Restart the current release and hold it to the health gate."""
    units = render_units(root, env)
    with Operation(env, "restart", reporter, units, remote_factory, wait=wait) as op:
        # A changed set-up is refused before the lock: the host stays as it was.
        op.settings = require_no_drift(
            env, op.connect().state({"details": True}), apply=apply_units
        )
        return _restart(op, env)


def _restart(op: Operation, env: Environment) -> str:
    with op.locked("restart") as state:
        if state.current is None:
            raise UsageError(f"nothing is deployed to {env.name}", hint="make deploy first")
        version = state.version_of(state.current)
        op.context.update({"version": version, "sha": state.current, "previous_sha": state.current})
        with op.timed("restart + health", f"timeout {env.health_timeout:.0f} s"):
            gate = op.call(
                "health",
                RESTART(
                    {
                        "version": version,
                        "sha": state.current,
                        "timeout": env.health_timeout,
                        "units": op.units,
                        "settings": op.settings or {},
                    }
                ),
            )
        op.settle("restart", gate)
        return f"{version} ({state.current[:12]})"


def stop(env: Environment, reporter: Reporter, remote_factory: RemoteFactory = SshRemote) -> None:
    """Stop the service (it stays enabled and starts again at boot or on deploy/restart)."""
    with (
        Operation(env, "stop", reporter, remote_factory=remote_factory) as op,
        op.locked("stop", needs_setup=False) as state,
    ):
        op.context.update({"sha": state.current, "version": state.version_of(state.current)})
        with op.timed("stop", env.unit):
            op.call("stop", STOP({}))
        op.finish = op.finish_event(SUCCEEDED)


def logs(
    env: Environment,
    lines: int,
    follow: bool,
    remote_factory: RemoteFactory = SshRemote,
) -> int:
    """The unit's journal, passed straight through (followed with `follow`); its exit code."""
    command = f"journalctl -u {env.unit}.service -n {int(lines)} --no-pager -o short-iso" + (
        " -f" if follow else ""
    )
    with reading(env, remote_factory) as host:
        return host.remote.stream(command)


def unlock(env: Environment, force: bool, remote_factory: RemoteFactory = SshRemote) -> str:
    """Clear the env lock only once its holder is known to be gone (or FORCE=1 is given)."""
    with reading(env, remote_factory) as host:
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
