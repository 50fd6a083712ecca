"""The host agent's channel: one OpenSSH client process, spoken to line by line.

Every operation opens this channel, so it must start fast: the `ssh` binary is connected in
about 0.14 s here, while importing fabric alone (paramiko, invoke, cryptography) takes 0.15 to
0.2 s of a run that must finish a no-op redeploy within 0.5 s. File transfers stay with fabric
(`remote.py`). Host keys are pinned the same way for both: the one known_hosts file, unknown
and changed keys refused, the file never written.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import subprocess
import tempfile
import time

from release.errors import ConnectionFailed, RequestNotSent, SessionClosed
from release.hosts.environments import Environment
from release.hosts.sshfailure import Why, connect_failure

#: ssh's own exit status for its failures (any other is the remote command's).
SSH_FAILED = 255

#: How long the agent may take to say hello, handshake and interpreter start included.
GREETING_TIMEOUT = 30.0


def ssh_argv(env: Environment, known_hosts: str, command: str, connect_timeout: float) -> list[str]:
    """The `ssh` command line for `command` on the env's host: no config file, no prompts,
    no agent or forwarding, and strict host-key checking against `known_hosts` only."""
    if '"' in known_hosts:
        raise ConnectionFailed(f"known_hosts path {known_hosts!r} contains a double quote")
    program = shutil.which("ssh")
    if program is None:
        raise ConnectionFailed(
            "the OpenSSH client (ssh) is not installed here",
            hint="install it, e.g. apt install openssh-client",
            host=env.host,
        )
    options = {
        "BatchMode": "yes",
        "StrictHostKeyChecking": "yes",
        # Quoted: ssh splits this option's value on spaces (it takes a list of files).
        "UserKnownHostsFile": f'"{known_hosts}"',
        "GlobalKnownHostsFile": "/dev/null",
        "UpdateHostKeys": "no",
        "CheckHostIP": "no",
        "IdentityAgent": "none",
        "ClearAllForwardings": "yes",
        "ConnectTimeout": str(max(1, round(connect_timeout))),
        # A silent network partition ends the session in a minute instead of never.
        "ServerAliveInterval": "15",
        "ServerAliveCountMax": "4",
        # The exchange paramiko negotiates too; OpenSSH's post-quantum default costs 0.09 s
        # more per connection on this hardware.
        "KexAlgorithms": "^curve25519-sha256,curve25519-sha256@libssh.org",
        "LogLevel": "ERROR",
    }
    argv = [program, "-F", "/dev/null", "-T", "-x", "-a"]
    for name, value in options.items():
        argv += ["-o", f"{name}={value}"]
    if env.ssh_key:
        argv += ["-i", env.ssh_key, "-o", "IdentitiesOnly=yes"]
    return [*argv, "-p", str(env.ssh_port), "-l", env.ssh_user, "--", env.host, command]


def connect_error(stderr: str, env: Environment, known_hosts: str) -> ConnectionFailed:
    """ssh's complaint before the session started, as one clear ConnectionFailed."""
    why: Why | None = None
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
        why = "key changed"
    elif "host key is known" in stderr or "Host key verification failed" in stderr:
        why = "key unknown"
    elif "are too open" in stderr or "bad permissions" in stderr:
        why = "identity open"
    elif "Permission denied" in stderr:
        why = "identity refused"
    elif unreachable := _UNREACHABLE.search(stderr):
        return connect_failure(env, known_hosts, "unreachable", unreachable.group(1))
    return connect_failure(env, known_hosts, why, last_line(stderr))


_UNREACHABLE = re.compile(
    r"(Connection refused|Connection timed out|No route to host|Network is unreachable|"
    r"Could not resolve hostname|Name or service not known|Operation timed out)"
)


def last_line(text: str) -> str:
    """The last non-blank line of some output."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


class OpenSshSession:
    """A remote command run by the `ssh` client, sent lines on stdin and answering on stdout."""

    def __init__(
        self,
        env: Environment,
        known_hosts: str,
        command: str,
        *,
        connect_timeout: float = 10,
        stdin_first: str = "",
    ) -> None:
        self.host = env.host
        # Written when the session is first used, not now: dialling must not block on it.
        self._stdin_first = stdin_first
        self._env = env
        self._known_hosts = known_hosts
        # A file, not a pipe: it can never fill up and stall ssh. Closed by close().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._buffer = bytearray()
        self._answered = False
        self._asked = False
        # Its own session: Ctrl-C meant for the CLI must not cut the host off mid-step.
        self._process = subprocess.Popen(
            ssh_argv(env, known_hosts, command, connect_timeout),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )

    def receive(self, *, timeout: float | None = GREETING_TIMEOUT) -> str:
        """The next line the command prints, unasked."""
        self._send_first()
        return self._read_line(timeout)

    def _send_first(self) -> None:
        """What the command reads before anything else (the agent's own code), once."""
        text, self._stdin_first = self._stdin_first, ""
        if text and self._process.stdin is not None:
            # A failure shows as ssh's own error when the answer is read.
            with contextlib.suppress(BrokenPipeError, ValueError):
                self._process.stdin.write(text.encode() + b"\n")
                self._process.stdin.flush()

    def ask(self, line: str, *, timeout: float | None = None) -> str:
        """Send a line, wait up to `timeout` for the answer line."""
        self._send_first()
        stdin = self._process.stdin
        if self._process.poll() is not None or stdin is None:
            raise RequestNotSent("lost the SSH connection", host=self.host)
        self._asked = True
        try:
            stdin.write(line.encode() + b"\n")
            stdin.flush()
        except (BrokenPipeError, ValueError):
            raise RequestNotSent("lost the SSH connection", host=self.host) from None
        return self._read_line(timeout)

    def _read_line(self, timeout: float | None) -> str:
        stdout = self._process.stdout
        assert stdout is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while (end := self._buffer.find(b"\n")) < 0:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([stdout], [], [], remaining)
            if not ready:
                raise SessionClosed(f"no answer within {timeout} s", host=self.host)
            chunk = os.read(stdout.fileno(), 1 << 16)
            if not chunk:
                raise self._ended()
            self._buffer += chunk
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        self._answered = True
        return line.decode()

    def _ended(self) -> ConnectionFailed | SessionClosed:
        """Why stdout closed: ssh failed (before or during the session) or the command ended."""
        try:
            code = self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = self._process.wait()
        self._stderr.seek(0)
        stderr = self._stderr.read().decode(errors="replace")
        if code != SSH_FAILED:
            return SessionClosed(last_line(stderr) or "the command ended", host=self.host)
        if not self._answered:
            return connect_error(stderr, self._env, self._known_hosts)
        return ConnectionFailed("lost the SSH connection", host=self.host)

    def close(self) -> None:
        """Close stdin (the agent exits when it sees EOF) and let ssh finish."""
        if not self._asked:
            # Nothing was sent, so nothing on the host waits for us: no need to let it finish
            # (an unreachable host would otherwise hold a refused deploy until ConnectTimeout).
            self._process.terminate()
        with contextlib.suppress(OSError, ValueError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()
