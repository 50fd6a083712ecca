"""Deploying to an env of several hosts, in-process (tests/release/fleetkit.py): stage on
every host, switch none until all are ready, switch all; a failure anywhere changes nothing
before the switch and brings every host back after it; locks in one order, on all or none."""

from __future__ import annotations

from pathlib import Path

import pytest

from release.agent.protocol import FAILED, QUICK, ROLLED_BACK, SUCCEEDED
from release.errors import (
    ConnectionFailed,
    HostError,
    LockHeld,
    OperationFailed,
    ReleaseError,
    UsageError,
)
from release.hosts import backup, everywhere
from release.hosts.deploy import previews
from release.hosts.host import Host
from release.hosts.lock import EnvLock
from release.hosts.promote import promote
from release.hosts.rollback import rollback
from release.hosts.service import restart, stop, unlock
from tests.release.fleetkit import Fleet, pretend_fleet
from tests.release.inprocess import Notes


@pytest.fixture
def three(tmp_path: Path) -> Fleet:
    fleet = pretend_fleet(tmp_path, 3)
    fleet.artifact("0.1.0")
    fleet.deploy("0.1.0")
    return fleet


def test_a_deploy_moves_every_host_and_records_it_on_each(three: Fleet) -> None:
    sha = three.artifact("0.2.0")
    notes = Notes()
    three.asked.clear()
    done = three.deploy("0.2.0", notes)
    assert done.outcome == SUCCEEDED
    assert set(three.currents().values()) == {sha}
    assert set(three.serving().values()) == {sha}
    for name in three.hosts:
        last = three.finishes(name)[-1]
        assert (last["outcome"], last["sha"], last["action"]) == (SUCCEEDED, sha, "deploy")
    assert notes.lines[0] == (
        f"deploying 0.2.0 ({sha[:12]}) to dev on 3 hosts (node00, node01, node02)"
    )
    assert "step ready: 3 hosts" in notes.lines and "step switch: 3 hosts" in notes.lines
    # Each host named in its own lines; no host switched before every host was ready.
    assert any(line.startswith("step build node01:") for line in notes.lines)
    phases = [command for _, command in three.asked if command.startswith("go_")]
    assert phases == ["go_ready"] * 3 + ["go_switch"] * 3 + ["go_settle"] * 3


def test_a_staging_failure_on_one_host_moves_no_host(three: Fleet) -> None:
    before = three.currents()
    sha = three.artifact("0.2.0")
    three.hosts["node01"].system.unconfigurable.add(sha)
    with pytest.raises(HostError) as caught:
        three.deploy("0.2.0")
    assert caught.value.message.startswith("staging failed on node01: ")
    assert three.currents() == before
    # Hosts that staged got ready meanwhile (held, answering nothing); none was switched.
    assert not any(command == "go_switch" for _, command in three.asked[-20:])
    for name in three.hosts:
        last = three.finishes(name)[-1]
        assert (last["outcome"], last["sha"]) == (FAILED, sha)
        assert "staging failed on node01" in str(last["reason"])


def test_a_gate_failure_on_one_host_after_the_switch_brings_every_host_back(
    three: Fleet,
) -> None:
    old = set(three.currents().values())
    sha = three.artifact("0.2.0")
    three.hosts["node02"].system.broken.add(sha)
    with pytest.raises(OperationFailed) as caught:
        three.deploy("0.2.0")
    assert "node02: " in caught.value.message and "every host went back" in caught.value.message
    assert set(three.currents().values()) == old
    assert set(three.serving().values()) == old
    for name in three.hosts:
        last = three.finishes(name)[-1]
        assert (last["outcome"], last["sha"]) == (ROLLED_BACK, sha)
        assert "node02" in str(last["reason"])


def test_an_unreachable_host_is_named_and_nothing_changes_anywhere(three: Fleet) -> None:
    before = three.currents()
    logs = {name: len(three.finishes(name)) for name in three.hosts}
    three.artifact("0.2.0")
    three.down.add("node01")
    with pytest.raises(ConnectionFailed) as caught:
        three.deploy("0.2.0")
    assert caught.value.message.startswith("plan failed on node01: cannot reach node01")
    assert three.currents() == before
    assert {name: len(three.finishes(name)) for name in three.hosts} == logs
    assert not any(command == "lock" for _, command in three.asked[-10:])


def test_fifty_hosts_lock_in_the_envs_order_and_a_held_lock_leaves_none_taken(
    tmp_path: Path,
) -> None:
    fleet = pretend_fleet(tmp_path, 50)
    fleet.artifact("0.1.0")
    fleet.deploy("0.1.0")
    locking = [host for host, command in fleet.asked if command == "lock"]
    assert locking == list(fleet.hosts), "one after the other, in the env's order"
    assert len(set(fleet.currents().values())) == 1

    # Another operator holds host 31: this deploy takes none of the locks for good.
    other = fleet.env.at("node31")
    holder = Host(fleet.remote(other), other)
    EnvLock(holder.open(), "deploy by someone else", [], wait=0).acquire()
    fleet.artifact("0.2.0")
    before = fleet.currents()
    with pytest.raises(LockHeld):
        fleet.deploy("0.2.0")
    assert fleet.currents() == before
    for name in fleet.hosts:
        state = Host(fleet.remote(fleet.env.at(name)), fleet.env.at(name)).state()
        assert (state.lock is not None) == (name == "node31"), name


@pytest.mark.parametrize("killed_at", ["go_ready", "go_switch", "go_settle"])
def test_an_operator_killed_between_phases_leaves_every_host_on_the_old_release(
    three: Fleet, killed_at: str
) -> None:
    old = set(three.currents().values())
    sha = three.artifact("0.2.0")
    three.killed_at = killed_at
    with pytest.raises(ReleaseError):
        three.deploy("0.2.0")
    assert set(three.currents().values()) == old
    assert set(three.serving().values()) == old
    for name in three.hosts:
        finishes = [r for r in three.finishes(name) if r["sha"] == sha]
        if killed_at == "go_ready":
            assert finishes == [], "nothing was switched, and nothing went live to record"
            continue
        assert len(finishes) == 1
        assert finishes[0]["outcome"] == (FAILED if killed_at == "go_switch" else ROLLED_BACK)
        assert "the operator went away before every host" in str(finishes[0]["reason"])


def test_a_rollback_takes_every_host_back_to_one_release(three: Fleet) -> None:
    first = next(iter(three.currents().values()))
    three.artifact("0.2.0")
    three.deploy("0.2.0")
    three.asked.clear()
    done = rollback(three.context(), None)
    assert (done.outcome, done.sha) == (SUCCEEDED, first)
    assert set(three.currents().values()) == {first} and set(three.serving().values()) == {first}
    for name in three.hosts:
        last = three.finishes(name)[-1]
        assert (last["action"], last["outcome"], last["sha"]) == ("rollback", SUCCEEDED, first)
    phases = [command for _, command in three.asked if command.startswith("go_")]
    assert phases == ["go_ready"] * 3 + ["go_switch"] * 3 + ["go_settle"] * 3


def test_a_rollback_whose_hosts_would_go_to_different_releases_is_refused(three: Fleet) -> None:
    three.artifact("0.2.0")
    three.artifact("0.3.0")
    three.deploy("0.2.0")
    # node01 alone went on to 0.3.0 (by hand): its previous good release is 0.2.0.
    three.hosts["node01"].deploy(three.on("node01"), "0.3.0")
    before = three.currents()
    with pytest.raises(UsageError) as caught:
        rollback(three.context(), None)
    assert caught.value.message.startswith("the hosts would roll back to different releases (")
    assert caught.value.hint == "name the one for all with TO=<version>"
    assert three.currents() == before
    done = rollback(three.context(), "0.1.0")
    assert set(three.currents().values()) == {done.sha}


def test_restart_goes_host_by_host_and_stops_at_the_first_failure(three: Fleet) -> None:
    sha = next(iter(three.currents().values()))
    assert restart(three.context()) == "; ".join(
        f"{name}: 0.1.0 ({str(sha)[:12]})" for name in three.hosts
    )
    three.asked.clear()
    three.hosts["node01"].system.broken.add(str(sha))
    with pytest.raises(OperationFailed) as caught:
        restart(three.context())
    assert caught.value.message.startswith("restart failed on node01: dev is not healthy")
    assert caught.value.message.endswith("(node02 left as they were)")
    assert "node02" not in {host for host, _ in three.asked}


def test_stop_stops_every_host(three: Fleet) -> None:
    stop(three.context())
    assert set(three.serving().values()) == {None}


def test_promote_moves_what_every_host_of_one_env_serves_to_every_host_of_another(
    tmp_path: Path,
) -> None:
    fleet = pretend_fleet(tmp_path, 3, envs=("dev", "staging"))
    staging, dev = fleet.whole("staging"), fleet.whole("dev")
    sha = fleet.artifact("0.2.0")
    everywhere.deploy(fleet.context(env=staging), "0.2.0", fleet.store)
    done = promote(fleet.context(env=dev), staging, fleet.store)
    assert (done.outcome, done.sha) == (SUCCEEDED, sha)
    assert set(fleet.currents().values()) == {sha}
    for name in fleet.hosts:
        last = fleet.finishes(name)[-1]
        assert (last["promoted_from"], last["outcome"]) == ("staging", SUCCEEDED)

    # One staging host moved on by hand: staging is not one release, nothing is promoted.
    fleet.artifact("0.3.0")
    node = fleet.hosts["node02"]
    node.deploy(node.known["staging"], "0.3.0")
    with pytest.raises(UsageError, match="staging is not healthy .its hosts run different"):
        promote(fleet.context(env=dev), staging, fleet.store)
    assert set(fleet.currents().values()) == {sha}


def test_backup_backups_plan_and_unlock_act_on_every_host(three: Fleet, tmp_path: Path) -> None:
    taken = backup.take_everywhere(three.context(), tmp_path / "pulled")
    assert [host for host, _ in taken] == list(three.hosts)
    for host, one in taken:
        assert one.pulled_to == str(tmp_path / "pulled" / host / "dev" / one.done["id"])
    listed = backup.listing_everywhere(three.context())
    assert [(host, len(found)) for host, found in listed] == [(h, 1) for h in three.hosts]
    three.artifact("0.2.0")
    plans = previews(three.context(), "0.2.0", three.store)
    assert len(plans) == 3
    assert unlock(three.context(), False) == "; ".join(
        f"{h}: dev is not locked" for h in three.hosts
    )


def test_a_host_cut_off_before_it_is_told_to_keep_the_release_is_named_and_goes_back(
    three: Fleet,
) -> None:
    old = three.currents()["node01"]
    sha = three.artifact("0.2.0")
    three.cut.add(("node01", "go_settle"))
    with pytest.raises(OperationFailed) as caught:
        three.deploy("0.2.0")
    assert "node01 could not be told to keep it and goes back by itself" in caught.value.message
    assert three.currents() == {"node00": sha, "node01": old, "node02": sha}
    last = three.finishes("node01")[-1]
    assert (last["sha"], last["outcome"]) == (sha, ROLLED_BACK)
    assert "the operator went away" in str(last["reason"])
    # The next deploy evens the hosts out.
    three.cut.clear()
    three.deploy("0.2.0")
    assert set(three.currents().values()) == {sha}


def test_a_hung_host_fails_the_deploy_within_a_quick_steps_limit_and_nothing_changes(
    three: Fleet,
) -> None:
    before = three.currents()
    three.artifact("0.2.0")
    three.hung.add("node02")
    with pytest.raises(HostError) as caught:
        three.deploy("0.2.0")
    assert caught.value.message == (
        f"plan failed on node02: the host agent failed (state): no answer within {QUICK} s"
    )
    assert three.currents() == before


def test_fifty_hosts_a_failure_on_one_after_the_switch_brings_all_fifty_back(
    tmp_path: Path,
) -> None:
    fleet = pretend_fleet(tmp_path, 50)
    old = fleet.artifact("0.1.0")
    fleet.deploy("0.1.0")
    sha = fleet.artifact("0.2.0")
    fleet.hosts["node37"].system.broken.add(sha)
    with pytest.raises(OperationFailed, match="node37: .*; every host went back"):
        fleet.deploy("0.2.0")
    assert set(fleet.currents().values()) == {old}
    assert set(fleet.serving().values()) == {old}
    outcomes = {str(fleet.finishes(name)[-1]["outcome"]) for name in fleet.hosts}
    assert outcomes == {ROLLED_BACK}
