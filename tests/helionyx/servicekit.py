"""Running the real service as a process for tests: settings, spawn, readiness polling."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
from fastapi.testclient import TestClient

from helionyx.api import create_app
from helionyx.config import Settings, load_settings
from helionyx.runtime import open_runtime

TOKEN = "test-token-0123456789abcdef"
T = TypeVar("T")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(data: Path, port: int, **extra: str) -> dict[str, str]:
    """Process environment for a dev service whose data lives under `data`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "HELIONYX_", "API_"))
    }
    env.update(
        {
            "ENV": "dev",
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "EVENT_STORE_PATH": str(data / "events"),
            "PROJECTIONS_DB_PATH": str(data / "projections" / "projections.db"),
            "HELIONYX_API_TOKEN": TOKEN,
            "LOG_LEVEL": "INFO",
        }
    )
    env.update(extra)
    return env


def in_process_settings(data: Path, token: str, **extra: str) -> Settings:
    """dev settings for an app run in-process, its data under `data`, no settings file."""
    return load_settings(
        "dev",
        env_file=data / "no-settings-file",
        environ={
            "EVENT_STORE_PATH": str(data / "events"),
            "PROJECTIONS_DB_PATH": str(data / "p.db"),
            "HELIONYX_API_TOKEN": token,
            **extra,
        },
    )


@contextmanager
def in_process_client(data: Path, token: str) -> Iterator[TestClient]:
    """The app over the service's real state under `data`, in this process."""
    settings = in_process_settings(data, token)
    runtime = open_runtime(settings)
    try:
        with TestClient(create_app(settings, runtime.assistant)) as client:
            yield client
    finally:
        runtime.close()


def poll(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Call `check` until it returns something truthy (returned), or fail after `timeout`.

    Truthy, not merely not-None: a check written as a comparison returns False while it
    waits, and a not-None rule would return that at once without waiting at all.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Service:
    """A running `python -m helionyx serve` process."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    @property
    def auth(self) -> dict[str, str]:
        """The bearer header the service accepts."""
        return {"Authorization": f"Bearer {TOKEN}"}

    def client(self) -> httpx.Client:
        """An HTTP client for this service."""
        return httpx.Client(base_url=self.base_url, headers=self.auth, timeout=10)

    def log(self) -> str:
        """Everything the process wrote to stderr/stdout so far."""
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 20, path: str = "/health/ready") -> None:
        """Poll `path` until it answers 200 (or the process dies)."""

        def ready() -> bool | None:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"service exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                return httpx.get(self.base_url + path, timeout=1).status_code == 200 or None
            except httpx.HTTPError:
                return None

        poll(ready, timeout, f"the service to answer 200 on {path}")

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def helionyx_cli(
    *args: str, env: Mapping[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python -m helionyx ARGS…` as an operator would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "helionyx", *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def mounted(target: Path, *options: str) -> Iterator[Path]:
    """A real mount on `target` for the context (root only): a small tmpfs, a read-only bind."""
    if not target.exists():
        target.mkdir(parents=True)
    subprocess.run(["mount", *options, str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True)


def fill(directory: Path) -> Path:
    """Fill the filesystem holding `directory` to the last byte; returns the filler to delete."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 16, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size) == size:
                    pass
    finally:
        os.close(fd)
    return filler


@contextmanager
def running_service(
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path,
    pass_fds: tuple[int, ...] = (),
    *,
    until: str = "/health/ready",
) -> Iterator[Service]:
    """Start the service, wait until `until` answers 200, and always stop it afterwards."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "helionyx", "serve"],
            env=dict(env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
        )
    service = Service(process, f"http://127.0.0.1:{env['API_PORT']}", log_path)
    try:
        service.wait_ready(path=until)
        yield service
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
