"""SSH to the host: the agent's channel through OpenSSH, file transfers through fabric.

Both pin host keys to one known_hosts file and refuse unknown or changed keys. fabric is
imported only by the operations that move files or stream output, so a rollback or a no-op
redeploy never pays for it (see `openssh.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from release.errors import ConnectionFailed, ConnectionLost
from release.hosts.environments import Environment
from release.hosts.openssh import OpenSshSession

if TYPE_CHECKING:
    from release.hosts.fabric_remote import FabricConnection


@dataclass(frozen=True)
class Result:
    """What a remote command did."""

    code: int
    stdout: str
    stderr: str


class Session(Protocol):
    """A remote command that answers one line per line it is sent."""

    def receive(self, *, timeout: float | None = ...) -> str:
        """The next line the command prints, unasked (its greeting)."""
        ...

    def ask(self, line: str, *, timeout: float | None = None) -> str:
        """Send a line and return the line that answers it."""
        ...

    def close(self) -> None:
        """End the command (closing its stdin)."""
        ...


class Remote(Protocol):
    """The boundary to the host: run a command, start a line-oriented one, copy a file."""

    host: str

    def run(self, command: str, *, timeout: float | None = None) -> Result:
        """Run a shell command; never raises for a non-zero exit."""
        ...

    def start(self, command: str, *, stdin_first: str = "") -> Session:
        """Start a command that is spoken to line by line; `stdin_first` is the first line
        it reads (sent once the connection is up)."""
        ...

    def put(self, local: Path, remote: str) -> None:
        """Copy a local file to a remote path."""
        ...

    def get(self, remote: str, local: Path) -> None:
        """Copy a remote file to a local path."""
        ...

    def stream(self, command: str) -> int:
        """Run a command with its output passed straight through; returns its exit code."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class SshRemote:
    """One environment's host over SSH: agent sessions by OpenSSH, files by fabric."""

    def __init__(self, env: Environment, *, connect_timeout: float = 10) -> None:
        self.host = env.host
        known_hosts = Path(env.known_hosts or Path.home() / ".ssh" / "known_hosts")
        if not known_hosts.is_file():
            raise ConnectionFailed(
                f"known_hosts file {known_hosts} does not exist",
                hint="set DEPLOY_KNOWN_HOSTS to a file holding the host's key",
                host=env.host,
            )
        if env.ssh_key and not Path(env.ssh_key).is_file():
            raise ConnectionFailed(
                f"SSH key {env.ssh_key} does not exist",
                hint="set DEPLOY_SSH_KEY to the private key the host accepts",
                host=env.host,
            )
        self._known_hosts = known_hosts
        self._env = env
        self._connect_timeout = connect_timeout
        self._fabric: FabricConnection | None = None

    def start(self, command: str, *, stdin_first: str = "") -> OpenSshSession:
        """Run `command` on the host in a new `ssh` process, spoken to line by line."""
        return OpenSshSession(
            self._env,
            str(self._known_hosts),
            command,
            connect_timeout=self._connect_timeout,
            stdin_first=stdin_first,
        )

    def _connection(self) -> FabricConnection:
        """fabric's connection, opened on first use (and only then imported)."""
        if self._fabric is None:
            from release.hosts.fabric_remote import FabricConnection  # noqa: PLC0415

            self._fabric = FabricConnection(
                self._env, self._known_hosts, connect_timeout=self._connect_timeout
            )
        return self._fabric

    def run(self, command: str, *, timeout: float | None = None) -> Result:
        """Run a shell command; never raises for a non-zero exit."""
        code, stdout, stderr = self._connection().run(command, timeout=timeout)
        return Result(code, stdout, stderr)

    def stream(self, command: str) -> int:
        """Run a command with its output streamed to this terminal (until it ends or Ctrl-C)."""
        return self._connection().stream(command)

    def put(self, local: Path, remote: str) -> None:
        """SFTP a file; if the connection turns out to be gone, once more on a new one (the file
        is written whole each time, and nothing on the host uses it before the next step)."""
        try:
            self._connection().put(local, remote)
        except ConnectionLost:
            self.close()
            self._connection().put(local, remote)

    def get(self, remote: str, local: Path) -> None:
        """SFTP a file from the host."""
        self._connection().get(remote, local)

    def close(self) -> None:
        """Close fabric's connection, if one was opened."""
        if self._fabric is not None:
            connection, self._fabric = self._fabric, None
            connection.close()

    def __enter__(self) -> SshRemote:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
