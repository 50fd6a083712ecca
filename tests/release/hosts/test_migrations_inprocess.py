"""Releases that change data, on a pretend host: the plan, the refusal, the read model built
beside the one in use, rollbacks that find their own, and retention of read models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from release.agent.protocol import FINISH, FORCED_READ, DataContract
from release.errors import OperationFailed, UsageError
from release.hosts.deploy import preview
from release.hosts.environments import Environment
from release.hosts.lock import operator
from release.hosts.rollback import rollback
from tests.release.conftest import tree_listing
from tests.release.inprocess import Notes, PretendHost

V1: DataContract = {"projections": 1, "events": {"NoteCaptured": {"reads": 1, "writes": 1}}}
V2: DataContract = {"projections": 2, "events": {"NoteCaptured": {"reads": 1, "writes": 1}}}
V3: DataContract = {"projections": 2, "events": {"NoteCaptured": {"reads": 2, "writes": 2}}}


@pytest.fixture
def dev(host: PretendHost) -> Environment:
    env = host.env("dev")
    host.set_up(env)
    host.artifact("1.0.0", contract=V1)
    host.artifact("2.0.0", contract=V2, lock="fastapi==2.0\n")
    host.artifact("3.0.0", contract=V3)
    return env


def read_models(env: Environment) -> list[str]:
    return sorted(p.name for p in (Path(env.data_dir) / "projections").glob("*.db"))


def finish(host: PretendHost, env: Environment) -> dict[str, object]:
    return [r for r in host.log(env) if r["step"] == FINISH][-1]


def test_a_release_that_needs_a_new_read_model_is_refused_without_migrate(
    host: PretendHost, dev: Environment
) -> None:
    host.deploy(dev, "1.0.0")
    before = tree_listing(Path(dev.base_dir), Path(dev.data_dir))
    with pytest.raises(UsageError) as refused:
        host.deploy(dev, "2.0.0")
    assert str(refused.value).startswith("2.0.0 needs a new read model (projections schema 1 -> 2)")
    assert "MIGRATE=1" in str(refused.value)
    assert tree_listing(Path(dev.base_dir), Path(dev.data_dir)) == before, "host untouched"


def test_with_migrate_the_read_model_is_built_beside_the_one_in_use(
    host: PretendHost, dev: Environment
) -> None:
    host.deploy(dev, "1.0.0")
    done = host.deploy(dev, "2.0.0", migrate=True)
    assert done.outcome == "succeeded"
    assert read_models(dev) == ["projections.db", "projections.v2.db"], "v1's is kept"
    record = finish(host, dev)
    assert record["migrated"] == "projections schema 1 -> 2"
    assert record["operator"] == operator(), "who allowed it is on record"


def test_a_read_model_build_over_a_second_shows_its_progress(
    host: PretendHost, dev: Environment
) -> None:
    host.deploy(dev, "1.0.0")
    host.write_events(dev, *[("NoteCaptured", 1)] * 9000)
    host.system.rebuild_takes = 1.3
    notes = Notes()
    host.deploy(dev, "2.0.0", notes, migrate=True)
    # Once a second while it runs, counting to the plan's estimate (9 000 events at 45 000/s).
    assert [(p["step"], round(p["done"]), p["total"]) for p in notes.progressed] == [
        ("read model", 1, 0.2)
    ]


def test_rolling_back_needs_no_migration_its_read_model_is_still_there(
    host: PretendHost, dev: Environment
) -> None:
    first = host.artifact("0.9.0", contract=V1)
    host.deploy(dev, "0.9.0")
    host.deploy(dev, "2.0.0", migrate=True)
    ran = len(host.system.ran)
    assert rollback(host.context(dev, Notes()), None).sha == first
    assert not any("rebuild-projections" in a for a in host.system.ran[ran:]), "no rebuild"


def test_going_forward_again_reuses_the_read_model_on_disk(
    host: PretendHost, dev: Environment
) -> None:
    host.deploy(dev, "1.0.0")
    host.deploy(dev, "2.0.0", migrate=True)
    v2 = Path(dev.data_dir) / "projections" / "projections.v2.db"
    built = v2.stat()
    rollback(host.context(dev, Notes()), None)
    assert v2.stat().st_ino == built.st_ino, "a rollback leaves 2.0.0's read model alone"
    # Forward again without MIGRATE: 2.0.0's read model is there and catches up when it starts.
    again = host.deploy(dev, "2.0.0")
    assert again.outcome == "succeeded"
    assert v2.stat().st_ino == built.st_ino, "reused, not rebuilt"
    assert "migrated" not in finish(host, dev), "nothing was built for it"
    assert read_models(dev) == ["projections.db", "projections.v2.db"]


def test_a_first_deploy_needs_no_migration(host: PretendHost, dev: Environment) -> None:
    assert host.deploy(dev, "2.0.0").outcome == "succeeded"


def test_a_read_model_goes_only_when_no_kept_release_uses_it(host: PretendHost) -> None:
    env = host.env("dev", keep_releases=3)
    host.set_up(env)
    host.artifact("1.0.0", contract=V1)
    for number in range(1, 4):
        host.artifact(f"2.{number}.0", contract=V2)
    host.deploy(env, "1.0.0")
    host.deploy(env, "2.1.0", migrate=True)
    assert read_models(env) == ["projections.db", "projections.v2.db"]
    host.deploy(env, "2.2.0")
    assert read_models(env) == ["projections.db", "projections.v2.db"], "1.0.0 is still kept"
    notes = Notes()
    host.deploy(env, "2.3.0", notes)
    assert read_models(env) == ["projections.v2.db"], "1.0.0 pruned, and its read model"
    assert "removed read model(s) no release here uses: projections.db" in notes.lines


def test_the_plan_says_what_a_migrating_deploy_would_do(
    host: PretendHost, dev: Environment
) -> None:
    first = host.artifact("0.9.0", contract=V1)
    host.deploy(dev, "0.9.0")
    host.write_events(dev, ("NoteCaptured", 1), ("NoteCaptured", 1))
    before = tree_listing(Path(dev.base_dir), Path(dev.data_dir))
    plan = preview(host.context(dev), "2.0.0", host.store).to_dict()
    assert plan["current_sha"] == first and plan["target_sha"].startswith("200")
    assert plan["projections_rebuild"] is True and plan["events_in_log"] == 2
    assert plan["lock_changed"] is True
    assert plan["dependencies"]["changed"] == ["fastapi 1.0 -> 2.0"]
    assert plan["rollback_safe"] is True
    assert plan["prune"] == [] and plan["commits"] == []
    assert tree_listing(Path(dev.base_dir), Path(dev.data_dir)) == before, "read-only"


def test_the_plan_says_when_rolling_back_would_not_be_safe(
    host: PretendHost, dev: Environment
) -> None:
    host.deploy(dev, "2.0.0")
    plan = preview(host.context(dev), "3.0.0", host.store).to_dict()
    assert plan["projections_rebuild"] is False, "same schema"
    assert plan["event_schema_changes"] == ["NoteCaptured: writes version 1 -> 2"]
    assert plan["rollback_safe"] is False
    assert (
        "cannot read the event log: it holds NoteCaptured events of schema version 2"
        in (plan["rollback_problem"])
    )


def forced_onto_newer_events(host: PretendHost, dev: Environment) -> str:
    """2.0.0, then 3.0.0 writing NoteCaptured v2, then a rollback to 2.0.0 forced; its SHA."""
    two = host.deploy(dev, "2.0.0").sha
    host.deploy(dev, "3.0.0")
    host.write_events(dev, ("NoteCaptured", 1), ("NoteCaptured", 2))
    with pytest.raises(UsageError, match="cannot read the event log"):
        rollback(host.context(dev, Notes()), None)
    done = rollback(host.context(dev, Notes(), forced="3.0.0 loses todos"), None)
    assert done.outcome == "succeeded" and host.current(dev) == two
    return two


def test_a_forced_rollback_serves_the_log_it_cannot_read_from_a_read_model_of_its_own(
    host: PretendHost, dev: Environment
) -> None:
    two = forced_onto_newer_events(host, dev)
    record = json.loads((Path(dev.data_dir) / "projections" / FORCED_READ).read_text())
    assert (record["commit"], record["reason"]) == (two, "3.0.0 loses todos")
    assert record["skips"] == ["NoteCaptured v2"]
    # 3.0.0's read model (the same schema) stays as it left it; 2.0.0 builds one apart.
    assert read_models(dev) == ["projections.v2.db", "projections.v2.forced.db"]
    assert finish(host, dev)["forced"] == "3.0.0 loses todos"


def test_rolling_forward_again_forgets_the_forced_read(host: PretendHost, dev: Environment) -> None:
    forced_onto_newer_events(host, dev)
    host.deploy(dev, "3.0.0")
    assert not (Path(dev.data_dir) / "projections" / FORCED_READ).exists()
    assert read_models(dev) == ["projections.v2.db"]


def test_a_failed_deploy_goes_back_to_the_release_forced_onto_the_log(
    host: PretendHost, dev: Environment
) -> None:
    two = forced_onto_newer_events(host, dev)
    broken = host.artifact("3.0.1", contract=V3)
    host.system.broken.add(broken)
    with pytest.raises(OperationFailed, match="rolled back to"):
        host.deploy(dev, "3.0.1")
    assert host.current(dev) == two
    assert (
        json.loads((Path(dev.data_dir) / "projections" / FORCED_READ).read_text())["commit"] == two
    )


def test_a_failed_rollback_away_from_the_forced_release_goes_back_to_it(
    host: PretendHost, dev: Environment
) -> None:
    two = forced_onto_newer_events(host, dev)
    three = ("300" * 40)[:40]  # the pretend host's commit of 3.0.0
    host.system.broken.add(three)
    with pytest.raises(OperationFailed, match="not healthy"):
        rollback(host.context(dev, Notes()), "3.0.0")
    assert host.current(dev) == two
    assert host.system.services[dev.unit].serving == ("2.0.0", two), "serving again"
