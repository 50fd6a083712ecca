"""The per-environment deploy lock: an atomic mkdir on the host, held by one operator process."""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from release.clock import utc_timestamp
from release.errors import ReleaseError
from release.host import Host, HostState, parse_state


class LockHeld(ReleaseError):
    """Another operation holds the environment's lock."""


class NotSetUp(ReleaseError):
    """The environment was never prepared on the host."""


def operator() -> str:
    """Who is deploying: DEPLOY_OPERATOR, else user@machine."""
    return os.environ.get("DEPLOY_OPERATOR") or f"{getpass.getuser()}@{socket.gethostname()}"


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, written into the lock on the host."""

    holder: str
    host: str
    pid: int
    started_at: str
    command: str
    token: str

    @classmethod
    def me(cls, command: str) -> Holder:
        """A holder record for this process."""
        return cls(
            holder=operator(),
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=utc_timestamp("seconds"),
            command=command,
            token=uuid.uuid4().hex,
        )


def describe(holder: dict[str, Any]) -> str:
    """One line naming a lock holder."""
    if holder.get("incomplete"):
        return "an operation that was killed while taking the lock"
    return (
        f"{holder.get('holder')} (pid {holder.get('pid')} on {holder.get('host')}, "
        f"`{holder.get('command')}` since {holder.get('started_at')})"
    )


def describe_now(holder: dict[str, Any]) -> str:
    """One line naming a lock holder, marked stale when it is provably gone (the same check
    the next operation uses to break the lock)."""
    line = describe(holder)
    if holder_gone(holder):
        return f"{line}; stale: that process is gone, the next operation removes the lock"
    return line


def holder_gone(holder: dict[str, Any]) -> bool | None:
    """True when the holder process provably no longer runs; None when that cannot be told."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return None
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class EnvLock:
    """Hold the environment lock for the duration of a `with` block."""

    def __init__(self, host: Host, command: str, notices: list[str]) -> None:
        self.host = host
        self.me = Holder.me(command)
        self.notices = notices
        self.held = False

    def acquire(self) -> HostState:
        """Take the lock and return the host's state under it; break the lock only when its
        holder provably died on this machine."""
        answer = self.host.call("lock", holder=asdict(self.me))
        if answer.get("not_set_up"):
            env = self.host.env
            raise NotSetUp(
                f"{env.name} is not set up on {env.host} ({env.base_dir} does not exist)",
                hint=f"run make setup-host ENV={env.name} first",
                env=env.name,
                host=env.host,
            )
        if not answer["acquired"]:
            holder = answer["holder"] or {}
            if holder_gone(holder):
                self.notices.append(f"removed a stale lock left by {describe(holder)}")
                answer = self.host.call(
                    "lock", holder=asdict(self.me), replace_token=holder.get("token")
                )
            if not answer["acquired"]:
                holder = answer["holder"] or {}
                raise LockHeld(
                    f"{self.host.env.name} is locked by {describe(holder)}",
                    hint=f"wait for it to finish; if that process is gone, "
                    f"make unlock ENV={self.host.env.name}",
                    env=self.host.env.name,
                    host=self.host.remote.host,
                )
        self.held = True
        return parse_state(answer["state"])

    def release(self, log_before: list[dict[str, Any]] | None = None) -> None:
        """Give the lock back (appending any final log events in the same call)."""
        if self.held:
            self.host.call("unlock", token=self.me.token, log_before=log_before or [])
            self.held = False
