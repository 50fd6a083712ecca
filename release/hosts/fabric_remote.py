"""fabric's side of the SSH boundary: shell commands, streamed output and SFTP transfers.

Imported only when an operation needs one of these (see `remote.py`); the host key must be in
the known_hosts file, as for the OpenSSH sessions.
"""

from __future__ import annotations

from pathlib import Path

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

from release.errors import ConnectionFailed, ConnectionLost
from release.hosts.environments import Environment
from release.hosts.sshfailure import Why, connect_failure


class FabricConnection:
    """A fabric Connection that refuses unknown or changed host keys, opened at once."""

    def __init__(self, env: Environment, known_hosts: Path, *, connect_timeout: float) -> None:
        self.host = env.host
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
        # fabric auto-adds unknown keys; a deploy tool must not.
        self._connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self._connection.client.load_host_keys(str(known_hosts))
        self._open(env, known_hosts)

    def _open(self, env: Environment, known_hosts: Path) -> None:
        try:
            self._connection.open()
        except paramiko.BadHostKeyException:
            raise connect_failure(env, known_hosts, "key changed") from None
        except paramiko.AuthenticationException:
            raise connect_failure(env, known_hosts, "identity refused") from None
        except paramiko.SSHException as exc:
            why: Why | None = "key unknown" if "not found in known_hosts" in str(exc) else None
            raise connect_failure(env, known_hosts, why, str(exc)) from None
        except (TimeoutError, OSError) as exc:
            reason = exc.strerror or type(exc).__name__ if isinstance(exc, OSError) else "timeout"
            raise connect_failure(env, known_hosts, "unreachable", reason or "timed out") from None

    def run(self, command: str, *, timeout: float | None = None) -> tuple[int, str, str]:
        """Exit code, stdout and stderr of a command (124 when it timed out)."""
        try:
            result = self._connection.run(command, timeout=timeout)
        except CommandTimedOut:
            return 124, "", f"timed out after {timeout} s"
        except (OSError, paramiko.SSHException) as exc:
            raise ConnectionFailed(
                f"lost the SSH connection ({type(exc).__name__})", host=self.host
            ) from None
        return int(result.exited), str(result.stdout), str(result.stderr)

    def stream(self, command: str) -> int:
        """Run a command with its output on this terminal; its exit code."""
        try:
            result = self._connection.run(command, hide=False, warn=True)
        except (OSError, paramiko.SSHException) as exc:
            raise ConnectionFailed(
                f"lost the SSH connection ({type(exc).__name__})", host=self.host
            ) from None
        return int(result.exited)

    def put(self, local: Path, remote: str) -> None:
        """SFTP a file to the host."""
        try:
            self._connection.put(str(local), remote)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ConnectionLost(
                f"upload to {self.host} failed: {exc or type(exc).__name__}", host=self.host
            ) from None

    def get(self, remote: str, local: Path) -> None:
        """SFTP a file from the host."""
        try:
            self._connection.get(remote, str(local))
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ConnectionFailed(
                f"download from {self.host} failed: {exc}", host=self.host
            ) from None

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()
