"""What the agent needs from the machine it runs on: processes, systemd, the service user,
and HTTP probes of the local service. `HostSystem` is the real one; tests give the agent a
fake of this small interface and a temporary directory standing in for `/`."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

from . import interpreter
from .errors import AgentError
from .protocol import SERVICE_USER, HostPlatform

#: What a probe saw: HTTP status (0: no answer), JSON body, error text.
Probe = tuple[int, Any, str]
#: Told the seconds a long program has run so far, once a second while it runs.
Ticker = Callable[[float], None]


class System(Protocol):
    """The machine under the agent."""

    #: Where systemd unit files live.
    units_dir: Path
    #: Where backups go unless an env's BACKUP_ROOT says otherwise.
    backups_dir: Path

    def run(
        self,
        args: list[str],
        *,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        what: str | None = None,
        as_service_user: bool = False,
        cwd: Path | None = None,
        on_tick: Ticker | None = None,
    ) -> str:
        """Run a program to completion; its stdout, or AgentError naming `what`."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that only goes forward (for deadlines and durations)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait between two polls."""
        ...

    def systemctl(self, *args: str, timeout: float = 120) -> tuple[int, str]:
        """systemctl with `args`: (exit code, last line of its error output)."""
        ...

    def unit_state(self, unit: str) -> dict[str, str]:
        """systemd's properties of `<unit>.service` (with uptime_seconds when active)."""
        ...

    def journal(self, unit: str, lines: int) -> list[str]:
        """The last journal lines of `<unit>.service`."""
        ...

    def probe(self, port: int, path: str, timeout: float = 2.0) -> Probe:
        """GET a path of the service on the loopback."""
        ...

    def service_user(self) -> tuple[int, int] | None:
        """(uid, gid) of the service user, if it exists."""
        ...

    def add_service_user(self) -> None:
        """Create the service's system user."""
        ...

    def chown(self, path: Path, *, to_root: bool = False) -> None:
        """Give `path` to the service user (or to root)."""
        ...

    def boot_id(self) -> str:
        """This boot's identity: it changes when the host restarts."""
        ...

    def platform(self) -> HostPlatform:
        """The interpreter releases are built with (the agent's own), machine and glibc."""
        ...


#: The kernel's identity of this boot (systemd-nspawn gives each container boot its own).
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def last_line(text: str) -> str:
    """The last non-empty line of a program's output ('' if none)."""
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


class HostSystem:
    """The real machine: subprocesses, systemd, /etc/passwd, the loopback."""

    units_dir = Path("/etc/systemd/system")
    backups_dir = Path("/var/backups/helionyx")

    def run(
        self,
        args: list[str],
        *,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        what: str | None = None,
        as_service_user: bool = False,
        cwd: Path | None = None,
        on_tick: Ticker | None = None,
    ) -> str:
        """Run a program to completion; its stdout, or AgentError naming `what`."""
        ids = self.service_user() if as_service_user else None
        # stdin is the operator's request stream: no child may read from it.
        with subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            user=ids[0] if ids else None,
            group=ids[1] if ids else None,
            cwd=cwd,
        ) as process:
            stdout, stderr = _communicate(process, timeout, on_tick)
        if process.returncode != 0:
            name = what or f"{Path(args[0]).name} {' '.join(args[1:3])}".rstrip()
            detail = last_line(stderr or stdout) or str(process.returncode)
            raise AgentError(f"{name} failed: {detail}")
        return stdout

    def monotonic(self) -> float:
        """Seconds on a clock that only goes forward (for deadlines and durations)."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait between two polls."""
        time.sleep(seconds)

    def systemctl(self, *args: str, timeout: float = 120) -> tuple[int, str]:
        """systemctl with `args`: (exit code, last line of its error output)."""
        result = subprocess.run(
            ["systemctl", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return result.returncode, last_line(result.stderr)

    def unit_state(self, unit: str) -> dict[str, str]:
        """systemd's properties of `<unit>.service` (with uptime_seconds when active)."""
        result = subprocess.run(
            ["systemctl", "show", f"{unit}.service", f"--property={UNIT_PROPERTIES}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return parse_unit_state(result.stdout)

    def journal(self, unit: str, lines: int) -> list[str]:
        """The last journal lines of `<unit>.service`."""
        result = subprocess.run(
            [
                "journalctl",
                "-u",
                f"{unit}.service",
                "-n",
                str(lines),
                "--no-pager",
                "-o",
                "short-iso",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return result.stdout.splitlines()

    def probe(self, port: int, path: str, timeout: float = 2.0) -> Probe:
        """A bare HTTP/1.0 GET over a socket: urllib would cost every agent start 60 ms of
        imports for a request to our own service on the loopback."""
        import socket  # noqa: PLC0415 - only probes need it

        request = (
            f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\r\n"
        )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
                conn.sendall(request.encode())
                chunks = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            return 0, None, str(exc) or type(exc).__name__
        return parse_http(b"".join(chunks))

    def service_user(self) -> tuple[int, int] | None:
        """(uid, gid) of the service user, if it exists."""
        try:
            user = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return None
        return user.pw_uid, user.pw_gid

    def add_service_user(self) -> None:
        """Create the service's system user (no home, no shell)."""
        home = ["--home-dir", "/var/lib/helionyx", "--no-create-home"]
        self.run(["useradd", "--system", *home, "--shell", "/usr/sbin/nologin", SERVICE_USER])

    def chown(self, path: Path, *, to_root: bool = False) -> None:
        """Give `path` to the service user (or to root)."""
        ids = (0, 0) if to_root else self.service_user()
        if ids is None:
            raise AgentError(f"there is no user {SERVICE_USER} on this host")
        os.chown(path, *ids)

    def boot_id(self) -> str:
        return BOOT_ID.read_text().strip()

    def platform(self) -> HostPlatform:
        return cast(HostPlatform, interpreter.facts())


#: What `unit_state` asks systemd about a unit.
UNIT_PROPERTIES = (
    "ActiveState,SubState,MainPID,ActiveEnterTimestampMonotonic,LoadState,"
    "UnitFileState,NRestarts,Result"
)


def parse_unit_state(show: str) -> dict[str, str]:
    """`systemctl show --property=…` output as a dict, with uptime_seconds when active."""
    state = dict(line.split("=", 1) for line in show.splitlines() if "=" in line)
    entered = int(state.get("ActiveEnterTimestampMonotonic", "0") or 0)
    if state.get("ActiveState") == "active" and entered:
        uptime = time.clock_gettime(time.CLOCK_MONOTONIC) - entered / 1e6
        state["uptime_seconds"] = f"{uptime:.1f}"
    return state


def _communicate(
    process: subprocess.Popen[str], timeout: float, on_tick: Ticker | None
) -> tuple[str, str]:
    """(stdout, stderr) of `process` once it ends, telling `on_tick` once a second; killed
    (and subprocess.TimeoutExpired raised) after `timeout` seconds, as subprocess.run does."""
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        wait = timeout - elapsed if on_tick is None else min(1.0, timeout - elapsed)
        try:
            return process.communicate(timeout=max(wait, 0.0))
        except subprocess.TimeoutExpired:
            elapsed = time.monotonic() - started
            if elapsed >= timeout:
                process.kill()
                process.communicate()
                raise subprocess.TimeoutExpired(process.args, timeout) from None
            if on_tick is not None:
                on_tick(round(elapsed, 1))


def parse_http(raw: bytes) -> Probe:
    """(status, JSON body, error) of a whole HTTP/1.0 answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        return 0, None, "not an HTTP answer"
    try:
        return int(status_line[1]), json.loads(body or b"null"), ""
    except ValueError:
        return int(status_line[1]), None, ""
