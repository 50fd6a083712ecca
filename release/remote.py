"""SSH to the host: one fabric connection per command, host keys pinned by known_hosts."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

from release.environments import Environment
from release.errors import ReleaseError


class ConnectionFailed(ReleaseError):
    """The host could not be reached or did not prove its identity."""


@dataclass(frozen=True)
class Result:
    """What a remote command did."""

    code: int
    stdout: str
    stderr: str


class SessionClosed(ReleaseError):
    """A long-running remote command ended or stopped answering."""


class RequestNotSent(ConnectionFailed):
    """The connection was gone before a request left: the host never saw it."""


class Session(Protocol):
    """A remote command that answers one line per line it is sent."""

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

    def start(self, command: str) -> Session:
        """Start a command that is spoken to line by line."""
        ...

    def put(self, local: Path, remote: str) -> None:
        """Copy a local file to a remote path."""
        ...

    def get(self, remote: str, local: Path) -> None:
        """Copy a remote file to a local path."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class SshRemote:
    """A fabric Connection that refuses unknown or changed host keys."""

    def __init__(self, env: Environment, *, connect_timeout: float = 10) -> None:
        self.host = env.host
        known_hosts = Path(env.known_hosts or Path.home() / ".ssh" / "known_hosts")
        connect_kwargs: dict[str, object] = {"allow_agent": False}
        if env.ssh_key:
            connect_kwargs.update(key_filename=env.ssh_key, look_for_keys=False)
        config = Config(
            overrides={
                "run": {"in_stream": False, "hide": True, "warn": True},
                "load_ssh_configs": False,
            }
        )
        self._connection = Connection(
            env.host,
            user=env.ssh_user,
            port=env.ssh_port,
            connect_timeout=connect_timeout,
            connect_kwargs=connect_kwargs,
            config=config,
        )
        client = self._connection.client
        # fabric auto-adds unknown keys; a deploy tool must not.
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        if not known_hosts.is_file():
            raise ConnectionFailed(
                f"known_hosts file {known_hosts} does not exist",
                hint="set DEPLOY_KNOWN_HOSTS to a file holding the host's key",
                host=env.host,
            )
        client.load_host_keys(str(known_hosts))
        self._known_hosts = known_hosts
        self._env = env

    def open(self) -> SshRemote:
        """Connect now, turning every failure into one clear ConnectionFailed."""
        host = f"{self._env.ssh_user}@{self._env.host}:{self._env.ssh_port}"
        try:
            self._connection.open()
        except paramiko.BadHostKeyException:
            raise ConnectionFailed(
                f"the host key of {host} does not match {self._known_hosts}",
                hint="if the host was really reinstalled, update known_hosts; otherwise stop",
                host=self._env.host,
            ) from None
        except paramiko.AuthenticationException:
            raise ConnectionFailed(
                f"{host} refused the SSH key", hint="check DEPLOY_SSH_KEY", host=self._env.host
            ) from None
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise ConnectionFailed(
                    f"the host key of {host} is not in {self._known_hosts}",
                    hint="add the host's key to known_hosts (unknown keys are never accepted)",
                    host=self._env.host,
                ) from None
            raise ConnectionFailed(f"SSH to {host} failed: {exc}", host=self._env.host) from None
        except (TimeoutError, OSError) as exc:
            reason = exc.strerror or type(exc).__name__ if isinstance(exc, OSError) else "timeout"
            raise ConnectionFailed(
                f"cannot reach {host} ({reason or 'timed out'})",
                hint="check DEPLOY_HOST/host in the environment file and that sshd runs",
                host=self._env.host,
            ) from None
        return self

    def run(self, command: str, *, timeout: float | None = None) -> Result:
        """Run a command over the open connection."""
        try:
            result = self._connection.run(command, timeout=timeout)
        except CommandTimedOut:
            return Result(124, "", f"timed out after {timeout} s")
        except (OSError, paramiko.SSHException) as exc:
            raise ConnectionFailed(
                f"lost the SSH connection ({type(exc).__name__})", host=self.host
            ) from None
        return Result(result.exited, result.stdout, result.stderr)

    def stream(self, command: str) -> int:
        """Run a command with its output streamed to this terminal (until it ends or Ctrl-C)."""
        try:
            result = self._connection.run(command, hide=False, warn=True)
        except (OSError, paramiko.SSHException) as exc:
            raise ConnectionFailed(
                f"lost the SSH connection ({type(exc).__name__})", host=self.host
            ) from None
        return int(result.exited)

    def start(self, command: str) -> SshSession:
        """Open a channel on the existing connection and run `command` on it."""
        transport = self._connection.client.get_transport()
        if transport is None or not transport.is_active():
            # Dropped between steps: connect again (fabric does the same for put).
            self.open()
            transport = self._connection.client.get_transport()
            if transport is None:
                raise ConnectionFailed("the SSH connection is closed", host=self.host)
        try:
            channel = transport.open_session()
            channel.exec_command(command)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ConnectionFailed(
                f"lost the SSH connection ({type(exc).__name__})", host=self.host
            ) from None
        return SshSession(channel, self.host)

    def put(self, local: Path, remote: str) -> None:
        """SFTP a file; if the connection turns out to be gone, once more on a new one (the file
        is written whole each time, and nothing on the host uses it before the next step)."""
        for attempt in (1, 2):
            try:
                self._connection.put(str(local), remote)
            except (OSError, EOFError, paramiko.SSHException) as exc:
                if attempt == 2:
                    raise ConnectionFailed(
                        f"upload to {self.host} failed: {exc or type(exc).__name__}",
                        host=self.host,
                    ) from None
                self._connection.close()
                self.open()
            else:
                return

    def get(self, remote: str, local: Path) -> None:
        """SFTP a file from the host."""
        try:
            self._connection.get(remote, str(local))
        except (OSError, paramiko.SSHException) as exc:
            raise ConnectionFailed(
                f"download from {self.host} failed: {exc}", host=self.host
            ) from None

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()

    def __enter__(self) -> SshRemote:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SshSession:
    """One exec channel spoken to line by line (the host agent's `serve` mode)."""

    def __init__(self, channel: paramiko.Channel, host: str) -> None:
        self._channel = channel
        self._stdin: IO[bytes] = channel.makefile_stdin("wb")
        self._stdout: IO[bytes] = channel.makefile("rb")
        self.host = host

    def ask(self, line: str, *, timeout: float | None = None) -> str:
        """Send a line, wait up to `timeout` for the answer line."""
        try:
            self._channel.settimeout(timeout)
            self._stdin.write(line.encode() + b"\n")
            self._stdin.flush()
        except (OSError, paramiko.SSHException) as exc:
            raise RequestNotSent(
                f"lost the SSH connection ({type(exc).__name__})", host=self.host
            ) from None
        try:
            answer = self._stdout.readline()
        except TimeoutError:
            raise SessionClosed(f"no answer within {timeout} s", host=self.host) from None
        except (OSError, paramiko.SSHException) as exc:
            raise ConnectionFailed(
                f"lost the SSH connection ({type(exc).__name__})", host=self.host
            ) from None
        if not answer:
            if self._channel.recv_exit_status() == -1:
                # No exit status came (paramiko's -1): the connection went, not the command.
                raise ConnectionFailed("lost the SSH connection", host=self.host)
            raise SessionClosed(self._stderr_tail() or "the command ended", host=self.host)
        return answer.decode()

    def _stderr_tail(self) -> str:
        self._channel.settimeout(2)
        try:
            lines = self._channel.makefile_stderr("rb").read().decode(errors="replace").split("\n")
        except (OSError, paramiko.SSHException):
            return ""
        lines = [line for line in lines if line.strip()]
        return lines[-1] if lines else ""

    def close(self) -> None:
        """Close stdin (the agent exits when it sees EOF) and the channel."""
        with contextlib.suppress(OSError, paramiko.SSHException):
            self._channel.shutdown_write()
        self._channel.close()
