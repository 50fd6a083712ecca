"""The per-environment deploy lock, as the operator takes, judges and gives it back."""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from collections.abc import Callable

from release.agent.protocol import LOCK, UNLOCK, HolderRecord, LockHolder, LogRecord
from release.agent.timestamps import utc_timestamp
from release.clock import Clock, SystemClock
from release.errors import LockHeld, NotSetUp
from release.hosts.host import Host, HostState


def operator() -> str:
    """Who is deploying: DEPLOY_OPERATOR, else user@machine."""
    return os.environ.get("DEPLOY_OPERATOR") or f"{getpass.getuser()}@{socket.gethostname()}"


def holder_for(command: str) -> HolderRecord:
    """A holder record for this process."""
    return {
        "holder": operator(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": utc_timestamp("seconds"),
        "command": command,
        "token": uuid.uuid4().hex,
    }


def describe(holder: LockHolder) -> str:
    """One line naming a lock holder."""
    if "incomplete" in holder:
        return "an operation that was killed while taking the lock"
    return (
        f"{holder['holder']} (pid {holder['pid']} on {holder['host']}, "
        f"`{holder['command']}` since {holder['started_at']})"
    )


def describe_now(holder: LockHolder) -> str:
    """One line naming a lock holder, marked stale when it is provably gone (the same check
    the next operation uses to break the lock)."""
    line = describe(holder)
    if holder_gone(holder):
        return f"{line}; stale: that process is gone, the next operation removes the lock"
    return line


def holder_gone(holder: LockHolder) -> bool | None:
    """True when the holder process provably no longer runs; None when that cannot be told."""
    if "incomplete" in holder or holder.get("host") != socket.gethostname():
        return None
    if not isinstance(holder.get("pid"), int):
        return None
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


#: How often a waiting operation asks for the lock again.
WAIT_POLL = 0.25


class EnvLock:
    """Hold the environment lock for the duration of an operation."""

    def __init__(
        self,
        host: Host,
        command: str,
        notices: list[str],
        *,
        wait: float,
        notify: Callable[[str], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.host = host
        self.clock = clock or SystemClock()
        self.me = holder_for(command)
        self.notices = notices
        #: Seconds to wait for a held lock before giving up (0: refuse at once).
        self.wait = wait
        self.notify = notify or notices.append
        self.held = False
        #: The holder seen by the last refused attempt.
        self.seen: LockHolder | None = None

    def acquire(self) -> HostState:
        """Take the lock and return the host's state under it, waiting up to `wait` seconds
        for a holder to finish; break the lock only when its holder provably died here."""
        deadline = self.clock.time() + self.wait
        told = False
        while True:
            state = self._attempt(last=self.clock.time() >= deadline)
            if state is not None:
                return state
            if not told and self.seen is not None:
                told = True
                self.notify(
                    f"{self.host.env.name} is locked by {describe(self.seen)}; "
                    f"waiting up to {self.wait:g} s for it"
                )
            self.clock.sleep(min(WAIT_POLL, max(0.0, deadline - self.clock.time())))

    def _attempt(self, *, last: bool) -> HostState | None:
        """One try: the state under the lock, None to try again (held, not `last`), or raise."""
        env = self.host.env
        answer = self.host.call(LOCK({"holder": self.me}))
        if answer.get("not_set_up"):
            raise NotSetUp(
                f"{env.name} is not set up on {env.host} ({env.base_dir} does not exist)",
                hint=f"run make setup-host ENV={env.name} first",
                env=env.name,
                host=env.host,
            )
        holder = answer["holder"]
        if not answer["acquired"] and holder is not None and holder_gone(holder):
            self.notices.append(f"removed a stale lock left by {describe(holder)}")
            stale = holder.get("token")
            replace = stale if isinstance(stale, str) else None
            answer = self.host.call(LOCK({"holder": self.me, "replace_token": replace}))
            holder = answer["holder"]
        if not answer["acquired"] and not last and holder is not None:
            self.seen = holder
            return None
        if not answer["acquired"]:
            waited = f" (still, after waiting {self.wait:g} s)" if self.wait else ""
            raise LockHeld(
                f"{env.name} is locked by "
                + (describe(holder) if holder else "an operation that just finished")
                + waited,
                hint=f"wait for it to finish (WAIT=<seconds> queues behind it); if that process "
                f"is gone, make unlock ENV={env.name}",
                env=env.name,
                host=self.host.remote.host,
            )
        self.held = True
        return HostState.of(answer["state"])

    def release(self, log_before: list[LogRecord] | None = None) -> None:
        """Give the lock back (appending any final log records in the same call)."""
        if self.held:
            self.host.call(UNLOCK({"token": self.me["token"]}), log_before=log_before or [])
            self.held = False
