"""Two rows of `make bench-service` about the truth under pressure (issue #25).

- Readiness polled as fast as one client can while 8 writers saturate the service: how many
  polls, how many said 503 (target 0), and the `server_errors` `/health` reports afterwards.
- 1,100 clients holding connections that trickle a request head: the service's open
  descriptors meanwhile, and how long 20 normal `/health` requests take (worst of them).
"""

from __future__ import annotations

import resource
import socket
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from benchmarks.service_bench import SECONDS, free_port, load, start


@dataclass(frozen=True)
class Readiness:
    """Readiness probes under saturating writes."""

    polls: int
    not_ready: int
    server_errors: int
    writes: int


@dataclass(frozen=True)
class SlowClients:
    """A normal client's wait while slow ones hold connections."""

    held: int
    service_fds: int
    worst_ms: float
    median_ms: float
    cut_by_408: int


def readiness_under_load(writers: int = 8) -> Readiness:
    """Poll /health/ready while `writers` processes POST as fast as they are answered."""
    with tempfile.TemporaryDirectory(prefix="helionyx-bench-", dir="/var/tmp") as tmp:
        port = free_port()
        process = start(Path(tmp), port, fsync=True)
        done: list[int] = []
        try:
            loader = threading.Thread(
                target=lambda: done.append(load(port, writers, SECONDS)[0]), daemon=True
            )
            loader.start()
            polls = not_ready = 0
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as probe:
                time.sleep(0.5)  # the writers are up
                while loader.is_alive():
                    polls += 1
                    not_ready += probe.get("/health/ready").status_code != 200
                loader.join()
                errors = int(probe.get("/health").json()["server_errors"])
        finally:
            process.terminate()
            process.wait(timeout=20)
    return Readiness(polls, not_ready, errors, done[0] if done else 0)


def slow_clients(count: int = 1100) -> SlowClients:
    """Hold `count` connections that never finish their request head; time normal requests."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 512)), hard))
    with tempfile.TemporaryDirectory(prefix="helionyx-bench-", dir="/var/tmp") as tmp:
        port = free_port()
        process = start(Path(tmp), port, fsync=True)
        held: list[socket.socket] = []
        try:
            for _ in range(count):
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
                held.append(sock)
            waits = []
            for _ in range(20):
                began = time.perf_counter()
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).raise_for_status()
                waits.append((time.perf_counter() - began) * 1000)
            fds = len(list(Path(f"/proc/{process.pid}/fd").iterdir()))
            cut = sum(1 for s in held[:50] if s.recv(32).startswith(b"HTTP/1.1 408"))
        finally:
            for sock in held:
                sock.close()
            process.terminate()
            process.wait(timeout=20)
    waits.sort()
    return SlowClients(count, fds, waits[-1], waits[len(waits) // 2], cut)


def report() -> dict[str, object]:
    """Run both and print them; the figures for the results file."""
    ready = readiness_under_load()
    print()
    print("readiness polled under 8 saturating writers (fsync on)")
    print(f"{'polls':>6} {'503':>5} {'server_errors':>14} {'writes':>7}")
    print(f"{ready.polls:>6} {ready.not_ready:>5} {ready.server_errors:>14} {ready.writes:>7}")
    slow = slow_clients()
    print()
    print(f"{slow.held} clients trickling a request head (REQUEST_READ_TIMEOUT 10 s)")
    print(f"{'service fds':>11} {'normal p50 ms':>14} {'worst ms':>9} {'408 of 50':>10}")
    figures = f"{slow.median_ms:>14.1f} {slow.worst_ms:>9.1f} {slow.cut_by_408:>10}"
    print(f"{slow.service_fds:>11} {figures}")
    return {"readiness": asdict(ready), "slow_clients": asdict(slow)}
