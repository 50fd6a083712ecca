"""The service as a real process under real faults: full disks (small tmpfs mounts), read-only
mounts, a rebuild while it runs, SIGKILL under load. Nothing diverges, nothing is stored twice.

Root is needed for the mounts (CI runs as root).
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from helionyx.domain.projections import Projections, rebuild
from helionyx.domain.store import EventStore
from tests.helionyx.servicekit import (
    Service,
    fill,
    free_port,
    helionyx_cli,
    mounted,
    poll,
    running_service,
    service_env,
)

pytestmark = pytest.mark.root


def logged_texts(events: Path) -> list[str]:
    store = EventStore(events)
    store.open()
    return [str(e.payload["text"]) for e in store.read() if e.event_type == "MessageIngested"]


def assert_equal_to_a_rebuild(events: Path, database: Path, scratch: Path) -> None:
    store = EventStore(events)
    store.open()
    rebuild(scratch / "rebuilt.db", store)
    live, rebuilt = Projections(database), Projections(scratch / "rebuilt.db")
    live.open()
    rebuilt.open()
    try:
        assert live.snapshot() == rebuilt.snapshot()
        assert live.applied == store.count
    finally:
        live.close()
        rebuilt.close()


def ready(service: Service) -> httpx.Response:
    return httpx.get(service.base_url + "/health/ready", timeout=5)


def test_a_full_disk_under_the_whole_data_dir(tmp_path: Path) -> None:
    with mounted(tmp_path / "data", "-t", "tmpfs", "-o", "size=1m", "tmpfs") as data:
        env = service_env(data, free_port())
        with running_service(env, tmp_path / "log", tmp_path) as service:
            with service.client() as client:
                for n in range(5):
                    assert client.post("/api/v1/ingest/message", json={"text": f"a{n}"}).is_success
                filler = fill(data)
                answers = {
                    f"b{n}": client.post(
                        "/api/v1/ingest/message", json={"text": f"todo: b{n} " + "z" * 2000}
                    )
                    for n in range(30)
                }
                codes = {r.status_code for r in answers.values()}
                assert codes <= {201, 503}, codes
                assert 503 in codes
                refused = next(r for r in answers.values() if r.status_code == 503)
                assert "No space left on device" in refused.json()["detail"]
                not_ready = ready(service)
                assert not_ready.status_code == 503
                assert "space" in not_ready.json()["reason"] or "full" in not_ready.json()["reason"]
                filler.unlink()
                # Repaired without a restart, from the log.
                poll(lambda: ready(service).status_code == 200 or None, 10, "ready again")
                assert client.post("/api/v1/ingest/message", json={"text": "after"}).is_success
            assert service.stop() == 0
        stored = logged_texts(data / "events")
        for text, answer in answers.items():
            count = sum(1 for t in stored if t.startswith(f"todo: {text} "))
            assert count == (1 if answer.status_code == 201 else 0), (text, answer.status_code)
        assert list((data / "events").glob("*.torn-*")) == [], "a failed append leaves nothing"
        assert_equal_to_a_rebuild(
            data / "events", data / "projections" / "projections.db", tmp_path
        )
        with running_service(env, tmp_path / "log2", tmp_path) as again:
            assert again.stop() == 0


def test_on_a_small_disk_the_read_models_wal_stays_small_and_refusals_are_logged_once(
    tmp_path: Path,
) -> None:
    with mounted(tmp_path / "data", "-t", "tmpfs", "-o", "size=1m", "tmpfs") as data:
        env = service_env(data, free_port())
        wal = data / "projections" / "projections.db-wal"
        with running_service(env, tmp_path / "log", tmp_path) as service:
            with service.client() as client:
                largest, codes = 0, []
                for n in range(300):
                    text = f"todo: t{n} " + "w" * 1500
                    codes.append(
                        client.post("/api/v1/ingest/message", json={"text": text}).status_code
                    )
                    largest = max(largest, wal.stat().st_size if wal.exists() else 0)
            assert service.stop() == 0
        assert set(codes) == {201, 503}, "the disk filled up"
        # Checkpointed every 64 pages and cut back to 256 KiB: it once held 737 KB of 1 MB.
        assert largest < 400 * 1024, largest
        refused = service.log().count("event log: refused a write")
        assert codes.count(503) > 10 and refused == 1, (codes.count(503), refused)
        assert_equal_to_a_rebuild(
            data / "events", data / "projections" / "projections.db", tmp_path
        )


def test_a_full_disk_under_the_database_only(tmp_path: Path) -> None:
    database = tmp_path / "projections"
    with mounted(database, "-t", "tmpfs", "-o", "size=256k", "tmpfs"):
        env = service_env(tmp_path, free_port())
        with running_service(env, tmp_path / "log", tmp_path) as service:
            with service.client() as client:
                filler = fill(database)
                for n in range(20):
                    answer = client.post(
                        "/api/v1/ingest/message", json={"text": f"todo: t{n:02d} " + "q" * 3000}
                    )
                    assert answer.status_code == 201, "stored in the log: a success, never a 5xx"
                not_ready = ready(service)
                assert not_ready.status_code == 503
                assert "database or disk is full" in not_ready.json()["reason"]
                todos = client.get("/api/v1/todos")
                assert todos.status_code == 503 and "full" in todos.json()["detail"]
                assert client.get("/api/v1/state").json()["projections"]["current"] is False
                filler.unlink()
                poll(lambda: ready(service).status_code == 200 or None, 10, "ready again")
                assert len(client.get("/api/v1/todos").json()) == 20
            assert service.stop() == 0
        assert_equal_to_a_rebuild(tmp_path / "events", database / "projections.db", tmp_path)
        # The restart needs no hand work (it used to die on a UNIQUE constraint).
        with running_service(env, tmp_path / "log2", tmp_path) as again:
            assert again.stop() == 0
    assert "Traceback" not in service.log() + again.log()


def test_read_only_storage_is_a_503_with_the_reason_and_stores_nothing(tmp_path: Path) -> None:
    env = service_env(tmp_path, free_port())
    events = tmp_path / "events"
    with running_service(env, tmp_path / "log", tmp_path) as service, service.client() as client:
        assert client.post("/api/v1/ingest/message", json={"text": "first"}).status_code == 201
        log_file = next(events.glob("events-*.jsonl"))
        for target, expected in ((log_file, "is not writable"), (events, "is not writable")):
            with mounted(target, "--bind", "-o", "ro", str(target)):
                subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], check=True)
                answer = client.post("/api/v1/ingest/message", json={"text": "refused"})
                assert answer.status_code == 503, answer.text
                assert expected in answer.json()["detail"]
                assert answer.headers["retry-after"]
                not_ready = ready(service)
                assert not_ready.status_code == 503 and expected in not_ready.json()["reason"]
        assert client.post("/api/v1/ingest/message", json={"text": "second"}).status_code == 201
    assert logged_texts(events) == ["first", "second"]


def test_rebuild_projections_is_refused_while_the_service_runs(tmp_path: Path) -> None:
    env = service_env(tmp_path, free_port())
    database = tmp_path / "projections" / "projections.db"

    def rebuild_cli() -> subprocess.CompletedProcess[str]:
        return helionyx_cli("rebuild-projections", env=env, cwd=tmp_path)

    with running_service(env, tmp_path / "log", tmp_path) as service, service.client() as client:
        client.post("/api/v1/ingest/message", json={"text": "todo: keep me"})
        inode = database.stat().st_ino
        refused = rebuild_cli()
        assert refused.returncode == 2
        assert refused.stderr.count("\n") == 1 and "in use by the running service" in refused.stderr
        assert database.stat().st_ino == inode, "the file under the service was not replaced"
        assert [t["text"] for t in client.get("/api/v1/todos").json()] == ["keep me"]
        assert service.stop() == 0
    assert rebuild_cli().returncode == 0


def test_sigkill_under_eight_writers_with_keys_stores_each_message_exactly_once(
    tmp_path: Path,
) -> None:
    """Writers retry what was not acknowledged, with the same key, once the service is back."""
    env = service_env(tmp_path, free_port())
    messages = [(f"m{n:04d}", f'"{uuid.uuid4()}"') for n in range(800)]
    acknowledged: set[str] = set()
    lock = threading.Lock()
    started = threading.Event()

    def send(client: httpx.Client, text: str, key: str) -> bool:
        try:
            answer = client.post(
                "/api/v1/ingest/message", json={"text": text}, headers={"Idempotency-Key": key}
            )
        except httpx.HTTPError:
            return False
        if answer.status_code == 201:
            with lock:
                acknowledged.add(text)
            started.set()
            return True
        return False

    def writer(service: Service, share: list[tuple[str, str]]) -> None:
        with service.client() as client:
            for text, key in share:
                send(client, text, key)

    shares = [messages[i::8] for i in range(8)]
    with running_service(env, tmp_path / "log", tmp_path) as service, ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(writer, service, share) for share in shares]
        started.wait(20)
        poll(lambda: len(acknowledged) >= 150 or None, 30, "load to build up")
        service.process.kill()
        service.process.wait()
        for future in futures:
            future.result()
    before_restart = set(acknowledged)
    stored = logged_texts(tmp_path / "events")
    assert before_restart <= set(stored), "no acknowledged message lost"
    assert len(stored) == len(set(stored))
    with running_service(env, tmp_path / "log2", tmp_path) as service, service.client() as client:
        for text, key in messages:
            if text not in acknowledged:
                assert send(client, text, key), text
        # Retrying an acknowledged one is recognised too.
        assert send(client, *messages[0])
        assert service.stop() == 0
    stored = logged_texts(tmp_path / "events")
    assert sorted(stored) == sorted(text for text, _ in messages), "each message exactly once"
    assert_equal_to_a_rebuild(
        tmp_path / "events", tmp_path / "projections" / "projections.db", tmp_path
    )
