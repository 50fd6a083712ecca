"""The hand-over between two real service processes on one inherited socket, without systemd:
`systemd-socket-activate` passes the socket, a datagram socket of ours stands in for systemd's
notify socket, and a release directory's `venv/bin/python` is a script (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from helionyx import handover
from helionyx.domain.store import EventStore
from tests.helionyx.servicekit import TOKEN, free_port, poll, service_env

pytestmark = pytest.mark.process

SHA = "a" * 40


@dataclass
class Running:
    """The first process, the socket it serves on, and the notify socket systemd would read."""

    process: subprocess.Popen[bytes]
    url: str
    notify: socket.socket
    log: Path

    def health(self) -> dict[str, object]:
        body: dict[str, object] = httpx.get(self.url + "/health", timeout=5).json()
        return body

    def main_pid_named(self, timeout: float) -> int:
        """The MAINPID= the successor sends, as systemd would receive it."""
        self.notify.settimeout(timeout)
        message = self.notify.recv(4096).decode()
        assert message.startswith("MAINPID="), message
        return int(message.removeprefix("MAINPID="))


def release(base: Path, python: str) -> None:
    """releases/<SHA> whose venv/bin/python runs `python`, `current` pointing at it."""
    binary = base / "releases" / SHA / "venv" / "bin" / "python"
    binary.parent.mkdir(parents=True)
    binary.write_text(f'#!/bin/sh\nexec {python} "$@"\n')
    binary.chmod(0o755)
    (base / "current").symlink_to(f"releases/{SHA}")
    (base / "handover.json").write_text(json.dumps({"sha": SHA, "timeout": 15}))


@contextmanager
def running(tmp_path: Path, python: str = sys.executable) -> Iterator[Running]:
    base = tmp_path / "base"
    release(base, python)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    port = free_port()
    env = service_env(tmp_path, port)
    env.update(
        {"HELIONYX_CURRENT": str(base / "current"), "NOTIFY_SOCKET": str(tmp_path / "notify")}
    )
    setenv = [f"--setenv={k}={v}" for k, v in env.items()]
    log = tmp_path / "log"
    process = subprocess.Popen(
        [
            *("systemd-socket-activate", f"--listen=127.0.0.1:{port}", *setenv),
            *(sys.executable, "-m", "helionyx", "serve"),
        ],
        cwd=tmp_path,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    first = Running(process, f"http://127.0.0.1:{port}", notify, log)
    try:
        poll(lambda: _ready(first.url) or None, 20, "the first process to be ready")
        yield first
    finally:
        for pid in _service_pids(tmp_path):
            os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
            process.wait()
        notify.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/health/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _service_pids(tmp_path: Path) -> list[int]:
    """Every helionyx process serving from `tmp_path` (a successor outlives its parent)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = str((entry / "cwd").readlink())
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cwd == str(tmp_path) and b"helionyx" in command:
                found.append(int(entry.name))
    return found


def test_the_next_release_takes_the_socket_and_the_log_over_losing_no_write(
    tmp_path: Path,
) -> None:
    acknowledged: list[str] = []
    failures: Counter[str] = Counter()
    stop = threading.Event()

    with running(tmp_path) as first:

        def write(number: int) -> None:
            headers = {"Authorization": f"Bearer {TOKEN}", "Connection": "close"}
            with httpx.Client(timeout=10, headers=headers) as client:
                sent = 0
                while not stop.is_set():
                    sent += 1
                    try:
                        answer = client.post(
                            first.url + "/api/v1/ingest/message",
                            json={"text": f"writer {number} message {sent}"},
                        )
                    except httpx.HTTPError as exc:
                        failures[type(exc).__name__] += 1
                        continue
                    if answer.status_code == 201:
                        acknowledged.append(answer.json()["event_id"])
                    else:
                        failures[f"HTTP {answer.status_code}"] += 1

        writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for thread in writers:
            thread.start()
        poll(lambda: len(acknowledged) > 50 or None, 20, "writes before the hand-over")
        assert first.health()["handover"] == {"protocol": 2, "pid": first.process.pid}

        first.process.send_signal(signal.SIGHUP)
        successor = first.main_pid_named(timeout=20)
        assert successor != first.process.pid
        assert first.process.wait(timeout=20) == 0, "the first process exits once taken over"
        answering = first.health()["handover"]
        assert isinstance(answering, dict) and answering["pid"] == successor, "the new one answers"
        count = len(acknowledged)
        poll(lambda: len(acknowledged) > count + 50 or None, 20, "writes after the hand-over")
        stop.set()
        for thread in writers:
            thread.join(timeout=30)
        log = first.log.read_text()

    assert not failures, failures
    store = EventStore(tmp_path / "events")
    store.open()
    logged = [e.event_id for e in store.read()]
    assert len(logged) == len(set(logged)), "nothing written twice"
    assert set(acknowledged) <= set(logged), "nothing acknowledged lost"
    assert f"hand-over: started {SHA[:12]} as pid {successor}" in log
    assert "hand-over: this process serves now" in log


def test_a_successor_that_exits_at_start_answers_nothing_and_the_first_serves_on(
    tmp_path: Path,
) -> None:
    with running(tmp_path, python="false") as first:
        first.process.send_signal(signal.SIGHUP)

        def failed() -> dict[str, object] | None:
            report = first.health()["handover"]
            assert isinstance(report, dict)
            last = report.get("last")
            return last if isinstance(last, dict) and last.get("state") == "failed" else None

        last = poll(failed, 20, "the hand-over to fail")
        assert last["commit"] == SHA
        assert str(last["reason"]).startswith("exited before it was ready")
        assert _ready(first.url) and first.process.poll() is None


def _last(first: Running) -> dict[str, object]:
    report = first.health()["handover"]
    assert isinstance(report, dict)
    last = report.get("last")
    return last if isinstance(last, dict) else {}


def _hold(first: Running, base: Path, seconds: float) -> int:
    """Ask for a held hand-over; the successor's pid once it is ready beside the first."""
    request = {"sha": SHA, "timeout": 15, "hold": seconds, "attempt": "held-1"}
    (base / "handover.json").write_text(json.dumps(request))
    first.process.send_signal(signal.SIGHUP)
    ready = poll(lambda: _last(first).get("state") == "ready" or None, 20, "a ready successor")
    assert ready
    pid = _last(first)["pid"]
    assert isinstance(pid, int)
    return pid


def _tell(first: Running, base: Path, word: str, attempt: str = "held-1") -> None:
    (base / "handover.json").write_text(json.dumps({"attempt": attempt, "word": word}))
    first.process.send_signal(signal.SIGHUP)


def test_a_held_successor_waits_ready_beside_the_first_until_told_to_switch(
    tmp_path: Path,
) -> None:
    base = tmp_path / "base"
    with running(tmp_path) as first:
        successor = _hold(first, base, 60)
        # Held: the first process answers every request, the successor none, for as long.
        for _ in range(20):
            assert first.health()["handover"]["pid"] == first.process.pid  # type: ignore[index]
        _tell(first, base, "switch", attempt="another")  # not this attempt's word: ignored
        assert _last(first)["state"] == "ready" and first.process.poll() is None
        _tell(first, base, "switch")
        assert first.main_pid_named(timeout=20) == successor
        assert first.process.wait(timeout=20) == 0
        assert first.health()["handover"]["pid"] == successor  # type: ignore[index]
        log = first.log.read_text()
    assert "is ready beside this process; held until told to switch (at most 60 s)" in log
    assert "SIGHUP without a switch or abort for this attempt; ignored" in log


@pytest.mark.parametrize(("word", "why"), [("abort", "told to give up"), (None, "not told")])
def test_a_held_successor_told_to_give_up_or_never_told_answers_nothing(
    tmp_path: Path, word: str | None, why: str
) -> None:
    base = tmp_path / "base"
    with running(tmp_path) as first:
        successor = _hold(first, base, 60 if word else 2)
        if word:
            _tell(first, base, word)
        failed = poll(lambda: _last(first).get("state") == "failed" or None, 20, "a give-up")
        assert failed
        assert str(_last(first)["reason"]).startswith(f"ready, but {why}")
        poll(lambda: not Path(f"/proc/{successor}").exists() or None, 10, "the successor gone")
        assert _ready(first.url) and first.process.poll() is None
        assert first.health()["handover"]["pid"] == first.process.pid  # type: ignore[index]


def test_the_running_process_serves_on_while_its_successor_is_being_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting the successor waits for a fork and a shell (on a busy host, tens of
    milliseconds, the first spike clients saw in a hand-over): the event loop answering them
    must go on meanwhile. Here the start waits until the loop has run something else."""
    base = tmp_path / "base"
    release(base, sys.executable)
    monkeypatch.setenv("HELIONYX_CURRENT", str(base / "current"))
    loop_ran = threading.Event()
    waited: list[bool] = []
    children: list[subprocess.Popen[bytes]] = []

    def slow_start(_release: Path, _report_fd: int) -> int:
        waited.append(loop_ran.wait(timeout=5))  # a blocked loop never sets it
        children.append(subprocess.Popen(["sleep", "60"]))
        return children[-1].pid

    async def hand_over() -> handover.Attempt | None:
        async def nothing(_pass_on: handover.PassOn | None) -> None:
            return None

        handing = handover.Handover(nothing, lambda: None, lambda: None, spawn=slow_start)
        handing.begin()
        await asyncio.sleep(0.05)  # what a request would be: the loop's next turns
        loop_ran.set()
        while handing.attempt is None or handing.attempt.state != "failed":
            await asyncio.sleep(0.01)
        return handing.attempt

    attempt = asyncio.run(asyncio.wait_for(hand_over(), timeout=20))
    assert waited == [True], "the loop stood still while the successor was started"
    # It never wrote on its pipe: taken for a start-up that failed, and killed.
    assert attempt is not None and str(attempt.reason).startswith("exited before it was ready")
    assert children[0].wait(timeout=10) == -signal.SIGKILL


def _request(path: str = "/health", *, close: bool = False) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return f"GET {path} HTTP/1.1\r\nHost: helionyx\r\n".encode() + connection + b"\r\n"


def _answer(conn: socket.socket) -> tuple[int, dict[str, object]]:
    """One response read off a raw connection: its status and JSON body."""
    conn.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        assert chunk, "connection closed mid-answer"
        body += chunk
    return int(head.split()[1]), json.loads(body)


def test_connections_waiting_for_a_request_at_the_switch_are_served_by_the_successor(
    tmp_path: Path,
) -> None:
    """A connection with no request in flight at the switch (just opened, or kept alive
    between requests) changes hands with the socket: the switch waits for neither, and its
    next request is answered by the successor instead of finding it closed."""
    with running(tmp_path) as first:
        address = ("127.0.0.1", int(first.url.rsplit(":", 1)[1]))
        kept = socket.create_connection(address)
        kept.sendall(_request())
        status, body = _answer(kept)
        assert status == 200 and body["handover"]["pid"] == first.process.pid  # type: ignore[index]
        silent = socket.create_connection(address)
        assert first.health()["handover"]["pid"] == first.process.pid  # type: ignore[index]

        first.process.send_signal(signal.SIGHUP)
        successor = first.main_pid_named(timeout=20)
        assert first.process.wait(timeout=20) == 0, "the switch waited for no silent client"

        for conn in (silent, kept):
            conn.sendall(_request(close=True))
            status, body = _answer(conn)
            assert status == 200 and body["handover"]["pid"] == successor  # type: ignore[index]
            conn.close()
        log = first.log.read_text()
    assert "2 connection(s) passed on between requests" in log
    assert "adopted 2 connection(s) from the release before" in log


def test_a_successor_from_before_the_exchange_gets_no_connections_and_the_switch_still_works(
    tmp_path: Path,
) -> None:
    """A release from before connections changed hands (rolled back to, say) never says it
    adopts them: none is sent to it, and an idle kept-alive one is closed as it always was."""
    older = tmp_path / "older.py"
    older.write_text(
        "import runpy, sys\n"
        "from helionyx import adoption\n"
        "adoption.ADOPTS = 'waiting for nothing'  # what a release from before never says\n"
        "sys.argv = [sys.argv[0], *sys.argv[3:]]  # after -m helionyx\n"
        "runpy.run_module('helionyx', run_name='__main__', alter_sys=True)\n"
    )
    with running(tmp_path, python=f"{sys.executable} {older}") as first:
        address = ("127.0.0.1", int(first.url.rsplit(":", 1)[1]))
        kept = socket.create_connection(address)
        kept.sendall(_request())
        assert _answer(kept)[0] == 200
        first.process.send_signal(signal.SIGHUP)
        successor = first.main_pid_named(timeout=20)
        assert first.process.wait(timeout=20) == 0
        kept.settimeout(10)
        assert kept.recv(1) == b"", "closed (cleanly) by the first process, as before"
        kept.close()
        assert first.health()["handover"]["pid"] == successor  # type: ignore[index]
        log = first.log.read_text()
    assert "0 connection(s) passed on between requests" in log
    assert "adopted" not in log


def test_a_kept_alive_connection_with_a_request_in_flight_at_the_switch_changes_hands_after_it(
    tmp_path: Path,
) -> None:
    """A request still arriving when the switch begins is answered by the old process (it still
    holds the log), keep-alive and all; then its connection goes to the successor too, instead
    of being closed after an answer that said nothing of closing."""
    with running(tmp_path) as first:
        address = ("127.0.0.1", int(first.url.rsplit(":", 1)[1]))
        conn = socket.create_connection(address)
        body = json.dumps({"text": "sent across the switch"}).encode()
        head = (
            "POST /api/v1/ingest/message HTTP/1.1\r\nHost: helionyx\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        conn.sendall(head + body[:5])  # in flight: its body not all there yet
        first.process.send_signal(signal.SIGHUP)
        poll(
            lambda: "hand-over: switching" in first.log.read_text() or None,
            20,
            "the switch to begin",
        )
        conn.sendall(body[5:])
        status, stored = _answer(conn)
        assert status == 201 and stored["event_id"]
        successor = first.main_pid_named(timeout=20)
        assert first.process.wait(timeout=20) == 0
        conn.sendall(_request(close=True))
        status, health = _answer(conn)
        assert status == 200 and health["handover"]["pid"] == successor  # type: ignore[index]
        conn.close()
