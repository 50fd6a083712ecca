"""Day-to-day operations on a deployed environment: restart, stop, logs, unlock."""

from __future__ import annotations

from pathlib import Path

from release.deploy import require_setup
from release.environments import Environment
from release.errors import UsageError
from release.history import SUCCEEDED
from release.host import Host
from release.lock import describe, holder_gone
from release.operation import Operation, Reporter
from release.remote import SshRemote
from release.units import render_units


def restart(root: Path, env: Environment, reporter: Reporter) -> str:
    """Restart the current release and hold it to the health gate."""
    with Operation(env, "restart", reporter, render_units(root, env)) as op:
        op.connect()
        state = op.take_lock("restart")
        finish = None
        try:
            require_setup(state, env)
            if state.current is None:
                raise UsageError(f"nothing is deployed to {env.name}", hint="make deploy first")
            version = state.version_of(state.current)
            op.context.update(version=version, sha=state.current, previous_sha=state.current)
            with op.timed("restart + health", f"timeout {env.health_timeout:.0f} s"):
                gate = op.call(
                    "restart",
                    "health",
                    version=version,
                    sha=state.current,
                    timeout=env.health_timeout,
                    units=op.units,
                )
            if not gate["healthy"]:
                finish, failure = op.unhealthy("restart", gate["reason"])
                raise failure
            finish = op.finish_event(SUCCEEDED)
            return f"{version} ({state.current[:12]})"
        finally:
            op.close(finish)


def stop(env: Environment, reporter: Reporter) -> None:
    """Stop the service (it stays enabled and starts again at boot or on deploy/restart)."""
    with Operation(env, "stop", reporter) as op:
        op.connect()
        state = op.take_lock("stop")
        finish = None
        try:
            op.context.update(sha=state.current, version=state.version_of(state.current))
            with op.timed("stop", env.unit):
                op.call("stop", "stop")
            finish = op.finish_event(SUCCEEDED)
        finally:
            op.close(finish)


def logs_command(env: Environment, lines: int, follow: bool) -> str:
    """The journalctl command for the env's unit."""
    return f"journalctl -u {env.unit}.service -n {int(lines)} --no-pager -o short-iso" + (
        " -f" if follow else ""
    )


def unlock(env: Environment, force: bool) -> str:
    """Clear the env lock only once its holder is known to be gone (or FORCE=1 is given)."""
    with SshRemote(env) as remote:
        host = Host(remote, env)
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
        host.call("unlock", force=True)
        return f"removed the lock held by {who}" + (" (stale: its process is gone)" if gone else "")
