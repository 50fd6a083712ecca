"""The service as a real process: uvicorn on a loopback port, real signals, real files."""

from __future__ import annotations

import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from helionyx import __commit__, __version__
from helionyx.domain.projections import Projections, rebuild
from helionyx.domain.store import EventStore
from tests.helionyx.servicekit import (
    TOKEN,
    free_port,
    helionyx_cli,
    poll,
    running_service,
    service_env,
)

pytestmark = pytest.mark.process


def logged_event_ids(data: Path) -> list[str]:
    store = EventStore(data / "events")
    store.open()
    return [e.event_id for e in store.read() if e.event_type == "MessageIngested"]


def assert_projections_match_a_rebuild(data: Path) -> None:
    store = EventStore(data / "events")
    store.open()
    live = Projections(data / "projections" / "projections.db")
    live.open()
    rebuild(data / "rebuilt.db", store)
    rebuilt = Projections(data / "rebuilt.db")
    rebuilt.open()
    assert live.snapshot() == rebuilt.snapshot()
    live.close()
    rebuilt.close()


def test_health_reports_env_version_and_commit_from_the_package(tmp_path: Path) -> None:
    env = service_env(tmp_path, free_port())
    with running_service(env, tmp_path / "log", tmp_path) as service:
        body = httpx.get(service.base_url + "/health").json()
        assert body == {
            "status": "healthy",
            "environment": "dev",
            "version": __version__,
            "commit": __commit__,
            "server_errors": 0,
        }
        assert service.stop() == 0
    log = service.log()
    phases = ["config:", "storage:", "projections:", "api:", "adapters:"]
    positions = [log.index(phase) for phase in phases]
    assert positions == sorted(positions), "start-up phases are logged in order"
    assert TOKEN not in log


def test_sigterm_with_requests_in_flight_loses_no_acknowledged_message(tmp_path: Path) -> None:
    env = service_env(tmp_path, free_port())
    acknowledged: list[str] = []
    lock = threading.Lock()
    with running_service(env, tmp_path / "log", tmp_path) as service:
        with service.client() as client:
            for i in range(200):
                response = client.post("/api/v1/ingest/message", json={"text": f"todo: task {i}"})
                assert response.status_code == 201
                acknowledged.append(response.json()["event_id"])
        assert len(logged_event_ids(tmp_path)) == 200

        stop = threading.Event()

        def sender(worker: int) -> None:
            with service.client() as client:
                for i in range(1000):
                    if stop.is_set():
                        return
                    try:
                        response = client.post(
                            "/api/v1/ingest/message", json={"text": f"note: {worker}-{i}"}
                        )
                    except httpx.HTTPError:
                        return  # the server stopped accepting; nothing was acknowledged
                    if response.status_code == 201:
                        with lock:
                            acknowledged.append(response.json()["event_id"])

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(sender, w) for w in range(8)]
            poll(lambda: len(acknowledged) > 260 or None, 30, "load to build up")
            service.process.send_signal(signal.SIGTERM)
            code = service.process.wait(timeout=10)
            stop.set()
            for future in futures:
                future.result()
        assert code == 0
        assert "stopped cleanly" in service.log()

    in_log = set(logged_event_ids(tmp_path))
    missing = [event_id for event_id in acknowledged if event_id not in in_log]
    assert missing == []
    assert len(acknowledged) > 260

    with running_service(env, tmp_path / "log2", tmp_path) as again, again.client() as client:
        state = client.get("/api/v1/state").json()
        assert state["events"]["by_type"]["MessageIngested"] == len(in_log)
        assert state["projections"]["current"] is True
        assert len(client.get("/api/v1/todos").json()) == 200
        assert again.stop() == 0
    assert_projections_match_a_rebuild(tmp_path)


def test_a_torn_line_from_a_crash_is_quarantined_at_start_up(tmp_path: Path) -> None:
    env = service_env(tmp_path, free_port())
    with running_service(env, tmp_path / "log", tmp_path) as service, service.client() as client:
        for text in ("one", "two", "three"):
            client.post("/api/v1/ingest/message", json={"text": text})
        service.process.kill()  # a crash, not a clean stop
        service.process.wait()
    log_file = next((tmp_path / "events").glob("events-*.jsonl"))
    with log_file.open("ab") as handle:
        handle.write(b'{"event_id":"torn-by-hand","event_ty')

    with running_service(env, tmp_path / "log2", tmp_path) as service, service.client() as client:
        assert client.get("/api/v1/state").json()["events"]["total"] == 3
        client.post("/api/v1/ingest/message", json={"text": "four"})
        assert service.stop() == 0
    assert "torn line" in service.log()
    quarantined = list((tmp_path / "events").glob("*.torn-*"))
    assert [q.read_bytes() for q in quarantined] == [b'{"event_id":"torn-by-hand","event_ty']
    assert len(logged_event_ids(tmp_path)) == 4


def test_a_foreign_projection_schema_refuses_to_start_with_advice(tmp_path: Path) -> None:
    env = service_env(tmp_path, free_port())
    with running_service(env, tmp_path / "log", tmp_path) as service:
        assert service.stop() == 0
    db = sqlite3.connect(tmp_path / "projections" / "projections.db")
    db.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    result = helionyx_cli("serve", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "rebuild-projections" in result.stderr
    rebuilt = helionyx_cli("rebuild-projections", env=env, cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    with running_service(env, tmp_path / "log2", tmp_path) as service:
        assert service.stop() == 0


def test_it_serves_on_a_socket_inherited_from_systemd(tmp_path: Path) -> None:
    port = free_port()
    env = service_env(tmp_path, port)
    setenv = [f"--setenv={k}={v}" for k, v in env.items() if k not in ("API_PORT",)]
    # API_PORT points elsewhere on purpose: the service must use the inherited socket.
    setenv.append(f"--setenv=API_PORT={free_port()}")
    activator = subprocess.Popen(
        [
            "systemd-socket-activate",
            f"--listen=127.0.0.1:{port}",
            *setenv,
            sys.executable,
            "-m",
            "helionyx",
            "serve",
        ],
        cwd=tmp_path,
        stdout=(tmp_path / "log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        # The listener exists before the service; the first request waits in its backlog
        # while the service starts, instead of being refused.
        poll(lambda: _listening(port) or None, 10, "the activator to listen")
        response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=30)
        assert response.json()["status"] == "healthy"
        log = (tmp_path / "log").read_text()
        assert "inherited socket" in log
        activator.send_signal(signal.SIGTERM)
        assert activator.wait(timeout=15) == 0
    finally:
        if activator.poll() is None:
            activator.kill()
            activator.wait()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_readiness_under_saturating_writers_never_says_503_or_counts_an_error(
    tmp_path: Path,
) -> None:
    env = service_env(tmp_path, free_port())
    stop = threading.Event()

    def writer(service_url: str, number: int) -> int:
        sent = 0
        with httpx.Client(base_url=service_url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
            while not stop.is_set():
                assert c.post("/api/v1/ingest/message", json={"text": f"w{number}"}).is_success
                sent += 1
        return sent

    with running_service(env, tmp_path / "log", tmp_path) as service:
        with ThreadPoolExecutor(8) as pool:
            writers = [pool.submit(writer, service.base_url, n) for n in range(8)]
            with httpx.Client(base_url=service.base_url, timeout=10) as probe:
                poll(lambda: service_has_events(probe), 10, "the writers to start")
                verdicts = [probe.get("/health/ready") for _ in range(150)]
            stop.set()
            sent = sum(w.result() for w in writers)
        health = httpx.get(service.base_url + "/health", timeout=10).json()
        assert service.stop() == 0
    refused = [v.json().get("reason") for v in verdicts if v.status_code != 200]
    assert refused == [], (
        f"{len(refused)} of 150 probes refused during {sent} writes: {refused[:3]}"
    )
    assert health["server_errors"] == 0


def service_has_events(probe: httpx.Client) -> bool | None:
    state = probe.get("/api/v1/state", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    return True if state["events"]["total"] > 50 else None


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def test_slow_clients_are_cut_off_and_never_starve_a_normal_request(tmp_path: Path) -> None:
    port = free_port()
    env = service_env(tmp_path, port, REQUEST_READ_TIMEOUT="3", MAX_CONNECTIONS="1000")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    slow: list[socket.socket] = []
    try:
        with running_service(env, tmp_path / "log", tmp_path) as service:
            for _ in range(1100):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and no more
                slow.append(sock)
            started = time.monotonic()
            answer = httpx.get(service.base_url + "/health", timeout=10)
            waited = time.monotonic() - started
            held = open_fds(service.process.pid)
            for sock in slow[-5:]:
                sock.sendall(b"a")  # trickling does not buy more time
            cut = [s.recv(64) for s in slow[-200:]]  # each answered and closed in 3 s
            health = httpx.get(service.base_url + "/health", timeout=10).json()
            assert service.stop() == 0
    finally:
        for sock in slow:
            sock.close()
    assert answer.status_code == 200 and waited < 1.0, waited
    assert held < 1000 + 64, "MAX_CONNECTIONS held, however many clients came"
    assert all(c.startswith(b"HTTP/1.1 408 Request Timeout") for c in cut), set(cut)
    assert health["server_errors"] == 0
    log = service.log()
    assert "Traceback" not in log
    assert log.count("closed the one waiting longest") == 1, "once a minute, with a count"


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sent before closing: head and body may come in separate segments."""
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def test_a_body_that_stalls_is_answered_408(tmp_path: Path) -> None:
    port = free_port()
    env = service_env(tmp_path, port, REQUEST_READ_TIMEOUT="2")
    with running_service(env, tmp_path / "log", tmp_path) as service:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /api/v1/ingest/message HTTP/1.1\r\nHost: x\r\n"
                + f"Authorization: Bearer {TOKEN}\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                + b'{"text": "'
            )
            started = time.monotonic()
            answer = read_until_closed(sock)
            waited = time.monotonic() - started
        assert service.stop() == 0
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"request body stalled for 2 s" in answer
    assert 1.5 < waited < 5
