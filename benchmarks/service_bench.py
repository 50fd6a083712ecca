"""`make bench-service`: acknowledged ingests per second against a real `helionyx serve`.

For 1 and 8 concurrent writers (keep-alive clients, one process each, each POSTing
`/api/v1/ingest/message` as fast as it is answered) it prints acknowledged ingests/s and
p50/p99 latency, with fsync on (every acknowledged event durable: group commit shares one fsync
among the appends that arrive while one runs) and with EVENT_STORE_FSYNC=false as the ceiling.
Then the same for the event store alone (threads appending directly, no HTTP), which shows
what group commit does where fsync, not the web stack, is the cost. The data lives under
/var/tmp (a real disk; tmpfs would make fsync free). Figures go to stdout and
benchmarks/results/service-latest.json.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from multiprocessing.queues import Queue
from pathlib import Path

import httpx

from helionyx.domain import events as ev
from helionyx.domain.events import Event
from helionyx.domain.store import EventStore

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0123456789abcdef"  # noqa: S105 - a throwaway service on loopback
SECONDS = float(os.environ.get("BENCH_SECONDS", "6"))
WRITERS = (1, 8)


@dataclass(frozen=True)
class Figure:
    """One run: how many ingests were acknowledged, how fast, how slow the slow ones were."""

    fsync: bool
    writers: int
    acknowledged: int
    failed: int
    per_second: float
    p50_ms: float
    p99_ms: float


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(data: Path, port: int, fsync: bool) -> subprocess.Popen[bytes]:
    """`helionyx serve` for dev on `port`, its data under `data`, ready when this returns."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HELIONYX_", "API_"))},
        "ENV": "dev",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "EVENT_STORE_PATH": str(data / "events"),
        "PROJECTIONS_DB_PATH": str(data / "projections.db"),
        "HELIONYX_API_TOKEN": TOKEN,
        "EVENT_STORE_FSYNC": "true" if fsync else "false",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "helionyx", "serve"],
        env=env,
        cwd=data,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the service did not become ready")


def _writer(
    port: int, number: int, seconds: float, results: Queue[tuple[list[float], int]]
) -> None:
    """One writer process: keep-alive POSTs until the time is up (http.client: light on CPU)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    latencies: list[float] = []
    failed = sent = 0
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        body = json.dumps({"text": f"todo: w{number} m{sent}"})
        began = time.perf_counter()
        try:
            connection.request("POST", "/api/v1/ingest/message", body, headers)
            answer = connection.getresponse()
            answer.read()
            ok = answer.status == 201
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            ok = False
        if ok:
            latencies.append(time.perf_counter() - began)
        else:
            failed += 1
        sent += 1
    connection.close()
    results.put((latencies, failed))


def load(port: int, writers: int, seconds: float) -> tuple[int, int, list[float]]:
    """Writers (one process each, so the load is not one GIL) POST until the time is up."""
    results: Queue[tuple[list[float], int]] = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(target=_writer, args=(port, n, seconds, results))
        for n in range(writers)
    ]
    for process in processes:
        process.start()
    latencies: list[float] = []
    failed = 0
    for _ in processes:
        mine, bad = results.get(timeout=seconds + 60)
        latencies.extend(mine)
        failed += bad
    for process in processes:
        process.join()
    return len(latencies), failed, latencies


def measure(fsync: bool, writers: int) -> Figure:
    """One fresh service, a short warm-up, then the timed load."""
    with tempfile.TemporaryDirectory(prefix="helionyx-bench-", dir="/var/tmp") as tmp:
        port = free_port()
        process = start(Path(tmp), port, fsync)
        try:
            load(port, writers, 1.0)
            acknowledged, failed, latencies = load(port, writers, SECONDS)
        finally:
            process.terminate()
            process.wait(timeout=20)
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0
    return Figure(
        fsync,
        writers,
        acknowledged,
        failed,
        acknowledged / SECONDS,
        statistics.median(ordered) * 1000 if ordered else 0.0,
        p99 * 1000,
    )


def store_only(fsync: bool, writers: int) -> tuple[float, float]:
    """Appends/s and appends per fsync with threads appending to an EventStore directly."""
    with tempfile.TemporaryDirectory(prefix="helionyx-bench-", dir="/var/tmp") as tmp:
        store = EventStore(Path(tmp), fsync=fsync)
        store.open()
        stop_at = time.monotonic() + SECONDS / 2
        done = [0] * writers

        def append(number: int) -> None:
            while time.monotonic() < stop_at:
                payload = {"text": f"w{number}", "source": "bench", "chat_id": None}
                store.append([Event(ev.MESSAGE_INGESTED, payload)])
                done[number] += 1

        threads = [threading.Thread(target=append, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(done) / (SECONDS / 2), sum(done) / max(1, store.writes)


def main() -> int:
    """Run every combination and print the tables."""
    figures = [measure(fsync, writers) for fsync in (True, False) for writers in WRITERS]
    print(f"{'fsync':<6} {'writers':>7} {'ack/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'failed':>6}")
    for f in figures:
        print(
            f"{'on' if f.fsync else 'off':<6} {f.writers:>7} {f.per_second:>8.0f} "
            f"{f.p50_ms:>7.1f} {f.p99_ms:>7.1f} {f.failed:>6}"
        )
    by = {(f.fsync, f.writers): f.per_second for f in figures}
    scale = by[(True, 8)] / by[(True, 1)]
    ceiling = by[(False, 8)] / by[(True, 8)]
    print(f"8 writers / 1 writer (fsync on): {scale:.2f}x (target >= 3)")
    print(f"no-fsync ceiling / fsync, 8 writers: {ceiling:.2f}x (target <= 2)")
    print()
    print("event store alone (threads appending, no HTTP)")
    print(f"{'fsync':<6} {'writers':>7} {'appends/s':>10} {'per write':>10}")
    stored = {}
    for fsync in (True, False):
        for writers in WRITERS:
            rate, per_write = store_only(fsync, writers)
            stored[f"{'on' if fsync else 'off'}-{writers}"] = [rate, per_write]
            print(f"{'on' if fsync else 'off':<6} {writers:>7} {rate:>10.0f} {per_write:>10.1f}")
    from benchmarks.service_limits import report  # noqa: PLC0415 - it imports this module

    limits = report()
    results = REPO / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "service-latest.json").write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "seconds": SECONDS,
                "figures": [asdict(f) for f in figures],
                "store_only": stored,
                **limits,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
