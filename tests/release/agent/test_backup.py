"""Backups on the host: a consistent copy, kept to a count, verified before a restore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from release.agent.protocol import BACKUP, BACKUPS, RESTORE, RestoreRequest
from tests.release.agent.agentkit import ask, send, target
from tests.release.inprocess import FakeSystem

SHA = "a" * 40


@pytest.fixture
def system(tmp_path: Path) -> FakeSystem:
    system = FakeSystem(tmp_path)
    where = target(tmp_path)
    events = Path(where["data_dir"]) / "events"
    events.mkdir(parents=True)
    (events / "events-000001.jsonl").write_text('{"id": 1}\n{"id": 2}\n')
    release = Path(where["base_dir"]) / "releases" / SHA
    release.mkdir(parents=True)
    (release / "manifest.json").write_text(json.dumps({"version": "0.1.0", "commit": SHA}))
    (Path(where["base_dir"]) / "current").symlink_to(f"releases/{SHA}")
    config = Path(where["config_file"])
    config.parent.mkdir(parents=True)
    config.write_text(f"BACKUP_ROOT={tmp_path / 'backups'}\n")
    system.user = True
    # Set up: a restore stops and starts the env's units, which systemd must know.
    (system.units_dir / "helionyx-dev.socket").write_text("[Socket]\nListenStream=8000\n")
    service = "[Unit]\nRequires=helionyx-dev.socket\n[Service]\nRestart=on-failure\n"
    (system.units_dir / "helionyx-dev.service").write_text(service)
    return system


def events_dir(system: FakeSystem) -> Path:
    return Path(target(system.root)["data_dir"]) / "events"


def take(system: FakeSystem, keep: int = 7) -> dict[str, object]:
    answer = send(system, BACKUP({"keep_backups": keep}))
    assert answer["ok"], answer
    result: dict[str, object] = answer["result"]
    return result


def restore(backup_id: str) -> RestoreRequest:
    return {
        "backup_id": backup_id,
        "source_env": "dev",
        "source_config_file": "",
        "timeout": 0.2,
    }


def test_a_backup_holds_the_events_to_a_position_with_checksums(system: FakeSystem) -> None:
    done = take(system)
    path = Path(str(done["path"]))
    assert path.parent == system.root / "backups" / "dev"
    assert done["event_count"] == 2
    assert (path / "events" / "events-000001.jsonl").read_text() == '{"id": 1}\n{"id": 2}\n'
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["release"] == SHA
    assert "SHA256SUMS" in done["files"]  # type: ignore[operator]


def test_backups_are_kept_to_their_count_oldest_going_first(system: FakeSystem) -> None:
    ids = [take(system, keep=2)["id"] for _ in range(3)]
    listed = ask(system, BACKUPS({}))["backups"]
    assert [b["id"] for b in listed] == ids[1:], "oldest first, the first one gone"


def test_a_tampered_backup_is_refused_and_nothing_is_stopped(system: FakeSystem) -> None:
    done = take(system)
    request = restore(str(done["id"]))
    request["source_config_file"] = target(system.root)["config_file"]
    (Path(str(done["path"])) / "events" / "events-000001.jsonl").write_text('{"id": 666}\n')
    answer = send(system, RESTORE(request))
    assert answer["ok"] is False
    assert "checksum mismatch for events/events-000001.jsonl" in str(answer.get("error"))
    assert not system.systemctl_calls, "the env was never stopped"
    assert (events_dir(system) / "events-000001.jsonl").read_text().count("\n") == 2


@pytest.mark.parametrize("backup_id", ["../../etc", "20261201T000000Z"])
def test_an_unknown_or_odd_backup_id_is_refused(system: FakeSystem, backup_id: str) -> None:
    request = restore(backup_id)
    request["source_config_file"] = target(system.root)["config_file"]
    answer = send(system, RESTORE(request))
    assert answer["ok"] is False and "no backup" in str(answer.get("error"))


def test_a_restore_puts_the_backups_events_in_place_keeping_the_old(system: FakeSystem) -> None:
    done = take(system)
    (events_dir(system) / "events-000001.jsonl").write_text('{"id": 1}\n{"id": 2}\n{"id": 3}\n')
    request = restore(str(done["id"]))
    request["source_config_file"] = target(system.root)["config_file"]
    answer = send(system, RESTORE(request))
    assert answer["ok"], answer
    result = answer["result"]
    assert (events_dir(system) / "events-000001.jsonl").read_text().count("\n") == 2
    kept = [Path(k) for k in result["kept"]]
    assert any((k / "events-000001.jsonl").read_text().count("\n") == 3 for k in kept if k.is_dir())
    assert result["rebuilt"] == "rebuilt projections"


def test_a_restore_that_cannot_finish_puts_the_data_back_and_starts_the_env(
    system: FakeSystem,
) -> None:
    done = take(system)
    (events_dir(system) / "events-000001.jsonl").write_text('{"id": 1}\n{"id": 2}\n{"id": 3}\n')
    system.failing.add("rebuild-projections")
    request = restore(str(done["id"]))
    request["source_config_file"] = target(system.root)["config_file"]
    answer = send(system, RESTORE(request))
    assert answer["ok"] is False and "rebuilding projections failed" in str(answer.get("error"))
    assert (events_dir(system) / "events-000001.jsonl").read_text().count("\n") == 3
    data = events_dir(system).parent
    assert sorted(p.name for p in data.iterdir()) == ["events", "projections"]
    assert ("start", "helionyx-dev.service") in system.systemctl_calls
