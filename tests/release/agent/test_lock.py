"""The env lock on the host: taken whole, refused without a trace, given back by its token."""

from __future__ import annotations

from pathlib import Path

import pytest

from release.agent.protocol import LOCK, UNLOCK, HolderRecord
from tests.release.agent.agentkit import ask, send, target
from tests.release.inprocess import FakeSystem


def holder(token: str = "t1") -> HolderRecord:
    return {
        "holder": "ops@laptop",
        "host": "laptop",
        "pid": 42,
        "started_at": "2026-12-01T10:00:00Z",
        "command": "deploy 0.2.0",
        "token": token,
    }


@pytest.fixture
def system(tmp_path: Path) -> FakeSystem:
    Path(target(tmp_path)["base_dir"]).mkdir(parents=True)
    return FakeSystem(tmp_path)


def base(system: FakeSystem) -> Path:
    return Path(target(system.root)["base_dir"])


def test_a_free_lock_is_taken_with_the_state_under_it(system: FakeSystem) -> None:
    answer = send(system, LOCK({"holder": holder()}))
    result = answer["result"]
    assert result["acquired"] and result["holder"] == holder()
    assert result["state"]["lock"] == holder(), "the state was read under the lock"
    assert not [p for p in base(system).iterdir() if p.name.startswith(".lock.")], "no staging"


def test_a_held_lock_is_refused_and_names_its_holder_touching_nothing(system: FakeSystem) -> None:
    send(system, LOCK({"holder": holder("first")}))
    mtime = base(system).stat().st_mtime_ns
    answer = send(system, LOCK({"holder": holder("second")}))
    result = answer["result"]
    assert not result["acquired"] and result["holder"]["token"] == "first"
    assert base(system).stat().st_mtime_ns == mtime, "not even the directory's mtime changed"


def test_an_env_never_set_up_is_said_so(tmp_path: Path) -> None:
    answer = send(FakeSystem(tmp_path), LOCK({"holder": holder()}))
    assert answer["result"] == {"acquired": False, "not_set_up": True, "holder": None}


def test_a_stale_lock_is_replaced_only_by_naming_its_token(system: FakeSystem) -> None:
    send(system, LOCK({"holder": holder("dead")}))
    wrong = send(system, LOCK({"holder": holder("new"), "replace_token": "other"}))
    assert not wrong["result"]["acquired"]
    right = send(system, LOCK({"holder": holder("new"), "replace_token": "dead"}))
    assert right["result"]["acquired"] and right["result"]["holder"]["token"] == "new"


def test_a_lock_without_its_holder_file_reads_as_incomplete(system: FakeSystem) -> None:
    (base(system) / ".lock").mkdir()
    answer = send(system, LOCK({"holder": holder()}))
    assert answer["result"]["holder"] == {"holder": "unknown", "incomplete": True}


def test_unlock_needs_the_holders_token_or_force(system: FakeSystem) -> None:
    send(system, LOCK({"holder": holder("mine")}))
    assert ask(system, UNLOCK({"token": "yours"})) == {"released": False, "holder": holder("mine")}
    assert (base(system) / ".lock").is_dir()
    assert ask(system, UNLOCK({"token": "mine"})) == {"released": True, "holder": holder("mine")}
    assert not (base(system) / ".lock").exists()
    send(system, LOCK({"holder": holder("again")}))
    assert ask(system, UNLOCK({"force": True})) == {"released": True, "holder": holder("again")}


def test_unlocking_a_free_env_says_so(system: FakeSystem) -> None:
    assert ask(system, UNLOCK({"token": "x"})) == {"released": False}


def test_a_rival_taking_the_lock_between_the_look_and_the_rename_wins(system: FakeSystem) -> None:
    # What the rename meets when a rival's lock appears after the check: a path rename(2)
    # cannot replace (here a link to nowhere, which the check does not see as a lock).
    (base(system) / ".lock").symlink_to("elsewhere")
    answer = send(system, LOCK({"holder": holder()}))
    assert answer["result"] == {"acquired": False, "holder": None}
    assert sorted(p.name for p in base(system).iterdir()) == [".lock"], "its staging is gone"
