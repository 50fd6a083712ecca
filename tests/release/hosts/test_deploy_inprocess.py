"""Deploy, rollback, restart and the lock through the real operator code and the real agent,
in-process on a pretend host (tests/release/inprocess.py): no root, no node."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from release.agent.protocol import (
    CUT_WATCH,
    FAILED,
    FINISH,
    HOST_SETTINGS,
    NOOP,
    ROLLED_BACK,
    SUCCEEDED,
    DataContract,
)
from release.errors import (
    HostError,
    LockHeld,
    NotFound,
    NotSetUp,
    OperationFailed,
    SessionClosed,
    UsageError,
)
from release.hosts.bundle import AGENT_BUNDLE
from release.hosts.environments import Environment
from release.hosts.host import target_of
from release.hosts.rollback import rollback
from release.hosts.service import restart, stop, unlock
from release.hosts.status import read_all, read_status
from release.hosts.units import render_units
from tests.helionyx.telegram.botapi_standin import serving as botapi_serving
from tests.release.agent.agentkit import ask
from tests.release.fakes import FakeClock
from tests.release.inprocess import REPO, Notes, PretendHost


@pytest.fixture
def dev(host: PretendHost) -> Environment:
    env = host.env("dev")
    host.set_up(env)
    return env


def finishes(host: PretendHost, env: Environment) -> list[dict[str, object]]:
    return [r for r in host.log(env) if r["step"] == FINISH]


def test_a_deploy_builds_flips_and_records_it(host: PretendHost, dev: Environment) -> None:
    sha = host.artifact("0.1.0")
    done = host.deploy(dev, "0.1.0")
    assert (done.outcome, done.sha) == (SUCCEEDED, sha)
    assert host.current(dev) == sha
    assert host.system.services[dev.unit].serving == ("0.1.0", sha)
    last = finishes(host, dev)[-1]
    assert (last["action"], last["outcome"], last["sha"]) == ("deploy", SUCCEEDED, sha)
    assert not (Path(dev.base_dir) / ".lock").exists(), "the lock was given back"


def test_a_second_deploy_keeps_the_first_as_previous(host: PretendHost, dev: Environment) -> None:
    first, second = host.artifact("0.1.0"), host.artifact("0.2.0")
    host.deploy(dev, "0.1.0")
    host.deploy(dev, "0.2.0")
    assert host.current(dev) == second
    assert (Path(dev.base_dir) / "previous").readlink().name == first


def test_identical_files_are_linked_from_the_donor_not_sent(
    host: PretendHost, dev: Environment
) -> None:
    first, second = host.artifact("0.1.0"), host.artifact("0.2.0")
    host.deploy(dev, "0.1.0")
    notes = Notes()
    host.deploy(dev, "0.2.0", notes)
    releases = Path(dev.base_dir) / "releases"
    lock_now, lock_before = (
        releases / second / "requirements.lock",
        releases / first / "requirements.lock",
    )
    assert lock_now.samefile(lock_before), "one inode: linked, not copied"
    assert any("identical file(s) linked from" in line for line in notes.lines)


def test_redeploying_what_runs_is_a_no_op_that_still_prunes(
    host: PretendHost, dev: Environment
) -> None:
    first, second, sha = (host.artifact(v) for v in ("0.1.0", "0.2.0", "0.3.0"))
    for version in ("0.1.0", "0.2.0", "0.3.0"):
        host.deploy(dev, version)
    assert host.releases(dev) == {first, second, sha}
    restarts = host.system.services[dev.unit].starts
    # The retention count lowered since: the no-op applies it (current and previous stay).
    done = host.deploy(replace(dev, keep_releases=1), "0.3.0")
    assert done.outcome == NOOP
    assert host.system.services[dev.unit].starts == restarts, "nothing was restarted"
    assert finishes(host, dev)[-1]["outcome"] == NOOP
    assert host.current(dev) == sha
    assert host.releases(dev) == {second, sha}, "0.1.0 pruned by the no-op"


def test_a_release_that_fails_its_health_gate_is_rolled_back_on_the_host(
    host: PretendHost, dev: Environment
) -> None:
    good, bad = host.artifact("0.1.0"), host.artifact("0.2.0")
    host.system.broken.add(bad)
    host.deploy(dev, "0.1.0")
    with pytest.raises(OperationFailed, match="rolled back to") as failed:
        host.deploy(dev, "0.2.0")
    assert failed.value.details == (f"{dev.unit}: deliberately broken release",)
    assert host.current(dev) == good
    assert host.system.services[dev.unit].serving == ("0.1.0", good)
    last = finishes(host, dev)[-1]
    assert (last["sha"], last["outcome"]) == (bad, ROLLED_BACK)


def test_a_first_release_that_cannot_start_fails_with_nothing_to_go_back_to(
    host: PretendHost, dev: Environment
) -> None:
    bad = host.artifact("0.1.0")
    host.system.broken.add(bad)
    with pytest.raises(OperationFailed, match="no previous release to roll back to"):
        host.deploy(dev, "0.1.0")
    assert finishes(host, dev)[-1]["outcome"] == FAILED


def test_a_failed_smoke_check_changes_nothing_live(host: PretendHost, dev: Environment) -> None:
    good, bad = host.artifact("0.1.0"), host.artifact("0.2.0")
    host.system.unconfigurable.add(bad)
    host.deploy(dev, "0.1.0")
    restarts = host.system.services[dev.unit].starts
    with pytest.raises(Exception, match="smoke check"):
        host.deploy(dev, "0.2.0")
    assert host.current(dev) == good
    assert host.system.services[dev.unit].starts == restarts
    assert bad not in host.releases(dev), "no half-built release is left"
    assert not list((Path(dev.base_dir) / "releases").glob(".*")), "nor its partial directory"
    last = finishes(host, dev)[-1]
    assert (last["sha"], last["outcome"]) == (bad, FAILED)


def test_an_unknown_version_is_refused_before_anything_is_announced(
    host: PretendHost, dev: Environment
) -> None:
    host.artifact("0.1.0")
    notes = Notes()
    before = host.log(dev) if (Path(dev.base_dir) / "deploy-log.jsonl").exists() else []
    dialled = len(host.remotes)
    with pytest.raises(NotFound, match="unknown version '9.9.9'"):
        host.deploy(dev, "9.9.9", notes)
    assert notes.lines == [], "not even the headline"
    assert len(host.remotes) == dialled, "no connection was made"
    assert (host.log(dev) if before else []) == before


def test_a_dev_build_is_refused_where_only_tags_go(host: PretendHost) -> None:
    live = host.env("live")
    host.set_up(live)
    host.artifact("0.1.1.dev3", tag=False)
    with pytest.raises(UsageError, match="unpublished dev build"):
        host.deploy(live, "0.1.1.dev3")
    assert host.current(live) is None


def test_an_env_never_set_up_is_refused_in_one_line(host: PretendHost) -> None:
    host.artifact("0.1.0")
    staging = host.env("staging")
    with pytest.raises(NotSetUp) as refused:
        host.deploy(staging, "0.1.0")
    assert refused.value.message == (
        f"staging is not set up on node1 ({staging.base_dir} does not exist)"
    )
    assert refused.value.hint == "run make setup-host ENV=staging first"
    assert (refused.value.env, refused.value.host) == ("staging", "node1")


class LockWatchingNotes(Notes):
    """Notes that read the env's lock when the lock step is reported."""

    def __init__(self, lock: Path) -> None:
        super().__init__()
        self.lock = lock
        self.holders: list[dict[str, object]] = []

    def step(self, name: str, seconds: float, detail: str = "") -> None:
        super().step(name, seconds, detail)
        if name == "lock":
            self.holders.append(json.loads((self.lock / "holder.json").read_text()))


def test_a_deploy_holds_the_lock_in_its_own_name_and_gives_it_back(
    host: PretendHost, dev: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os  # noqa: PLC0415

    monkeypatch.setenv("DEPLOY_OPERATOR", "ops@laptop")
    host.artifact("0.1.0")
    notes = LockWatchingNotes(Path(dev.base_dir) / ".lock")
    host.deploy(dev, "0.1.0", notes)
    [holder] = notes.holders
    assert (holder["holder"], holder["pid"], holder["command"]) == (
        "ops@laptop",
        os.getpid(),
        "deploy 0.1.0",
    )
    assert not (Path(dev.base_dir) / ".lock").exists()


def test_a_lock_whose_holder_just_left_is_said_so(host: PretendHost, dev: Environment) -> None:
    host.artifact("0.1.0")
    # What the agent answers when its rename meets a lock that came and went: no holder.
    (Path(dev.base_dir) / ".lock").symlink_to("gone")
    with pytest.raises(LockHeld) as refused:
        host.deploy(dev, "0.1.0")
    assert refused.value.message == "dev is locked by an operation that just finished"


def test_a_held_lock_refuses_and_changes_nothing(host: PretendHost, dev: Environment) -> None:
    host.artifact("0.1.0")
    lock = Path(dev.base_dir) / ".lock"
    lock.mkdir()
    holder = '{"holder": "ops@elsewhere", "host": "elsewhere", "pid": 1, "command": "deploy",'
    (lock / "holder.json").write_text(holder + ' "started_at": "now", "token": "t"}')
    with pytest.raises(LockHeld) as refused:
        host.deploy(dev, "0.1.0")
    assert refused.value.message == (
        "dev is locked by ops@elsewhere (pid 1 on elsewhere, `deploy` since now)"
    )
    asked = [r for remote in host.remotes for s in remote.sessions for r in s.requests]
    assert "unlock" not in asked, "a lock never taken is not given back"
    assert refused.value.hint == (
        "wait for it to finish (WAIT=<seconds> queues behind it); "
        "if that process is gone, make unlock ENV=dev"
    )
    assert (refused.value.env, refused.value.host) == ("dev", "node1")
    assert host.current(dev) is None
    assert lock.is_dir(), "somebody else's lock stays"


def test_a_lock_left_half_taken_is_named_so(host: PretendHost, dev: Environment) -> None:
    host.artifact("0.1.0")
    (Path(dev.base_dir) / ".lock").mkdir()  # killed between its mkdir and its holder file
    with pytest.raises(LockHeld) as refused:
        host.deploy(dev, "0.1.0")
    assert refused.value.message == (
        "dev is locked by an operation that was killed while taking the lock"
    )


def test_a_lock_left_by_a_dead_process_here_is_broken_with_a_notice(
    host: PretendHost, dev: Environment
) -> None:
    import socket  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    dead = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    sha = host.artifact("0.1.0")
    lock = Path(dev.base_dir) / ".lock"
    lock.mkdir()
    (lock / "holder.json").write_text(
        f'{{"holder": "ops", "host": "{socket.gethostname()}", "pid": {dead}, '
        '"command": "deploy", "started_at": "then", "token": "old"}'
    )
    notes = Notes()
    host.deploy(dev, "0.1.0", notes)
    assert host.current(dev) == sha
    assert (
        f"removed a stale lock left by ops (pid {dead} on {socket.gethostname()}, "
        "`deploy` since then)"
    ) in notes.lines


def test_rollback_goes_to_the_previous_good_release(host: PretendHost, dev: Environment) -> None:
    first, _ = host.artifact("0.1.0"), host.artifact("0.2.0")
    host.deploy(dev, "0.1.0")
    host.deploy(dev, "0.2.0")
    done = rollback(host.context(dev, Notes()), None)
    assert (done.outcome, done.sha) == (SUCCEEDED, first)
    assert host.current(dev) == first
    assert host.system.services[dev.unit].serving == ("0.1.0", first)


def test_rollback_skips_a_release_that_failed(host: PretendHost, dev: Environment) -> None:
    first, second, third = (host.artifact(v) for v in ("0.1.0", "0.2.0", "0.3.0"))
    host.system.broken.add(second)
    host.deploy(dev, "0.1.0")
    with pytest.raises(OperationFailed):
        host.deploy(dev, "0.2.0")
    host.deploy(dev, "0.3.0")
    done = rollback(host.context(dev, Notes()), None)
    assert done.sha == first, "0.2.0 failed its gate: never a rollback target"
    assert third in host.releases(dev)


@pytest.mark.parametrize("ref", ["v0.1.0", "0.1.0", "0100100"])
def test_rollback_to_a_named_version_tag_or_sha_prefix(
    host: PretendHost, dev: Environment, ref: str
) -> None:
    first = host.artifact("0.1.0")
    for version in ("0.2.0", "0.3.0"):
        host.artifact(version)
    for version in ("0.1.0", "0.2.0", "0.3.0"):
        host.deploy(dev, version)
    assert first.startswith("0100100")
    assert rollback(host.context(dev, Notes()), ref).sha == first


def test_rollback_with_nowhere_to_go_changes_nothing(host: PretendHost, dev: Environment) -> None:
    host.artifact("0.1.0")
    host.deploy(dev, "0.1.0")
    log = host.log(dev)
    with pytest.raises(UsageError, match="no previous good release"):
        rollback(host.context(dev, Notes()), None)
    with pytest.raises(UsageError, match="no single release"):
        rollback(host.context(dev, Notes()), "7.7.7")
    assert host.log(dev) == log, "not even a record"


def test_a_rollback_target_that_cannot_start_restores_the_running_release(
    host: PretendHost, dev: Environment
) -> None:
    first, second = host.artifact("0.1.0"), host.artifact("0.2.0")
    host.deploy(dev, "0.1.0")
    host.deploy(dev, "0.2.0")
    host.system.broken.add(first)
    with pytest.raises(OperationFailed, match=f"restored {second[:12]}"):
        rollback(host.context(dev, Notes()), None)
    assert host.current(dev) == second
    assert host.system.services[dev.unit].serving == ("0.2.0", second)


def test_retention_keeps_the_newest_and_never_current_or_previous(
    host: PretendHost, dev: Environment
) -> None:
    versions = [f"0.{n}.0" for n in range(1, 7)]
    shas = [host.artifact(v) for v in versions]
    for version in versions:
        host.deploy(dev, version)
    assert host.releases(dev) == set(shas[-dev.keep_releases :])
    assert host.current(dev) == shas[-1]


def test_a_failed_release_goes_before_older_good_ones(host: PretendHost) -> None:
    env = host.env("dev", keep_releases=3)
    host.set_up(env)
    versions = [f"0.{n}.0" for n in range(1, 5)]
    shas = [host.artifact(v) for v in versions]
    host.system.broken.add(shas[1])
    for version in versions:
        with contextlib.suppress(OperationFailed):
            host.deploy(env, version)
    assert host.releases(env) == {shas[0], shas[2], shas[3]}, "0.2.0 failed: first to go"


def test_restart_and_stop_are_recorded(host: PretendHost, dev: Environment) -> None:
    host.artifact("0.1.0")
    host.deploy(dev, "0.1.0")
    assert restart(host.context(dev, Notes())).startswith("0.1.0")
    stop(host.context(dev, Notes()))
    assert host.system.unit_state(dev.unit)["ActiveState"] == "inactive"
    actions = [(r["action"], r["outcome"]) for r in finishes(host, dev)]
    assert actions[-2:] == [("restart", SUCCEEDED), ("stop", SUCCEEDED)]


def test_status_tells_the_truth_after_a_stop(host: PretendHost, dev: Environment) -> None:
    sha = host.artifact("0.1.0")
    host.deploy(dev, "0.1.0")
    healthy = read_status(host.context(dev))
    assert (healthy.healthy, healthy.sha, healthy.version) == (True, sha, "0.1.0")
    assert healthy.deployed_by is not None
    stop(host.context(dev, Notes()))
    stopped = read_status(host.context(dev))
    assert not stopped.healthy and "inactive" in str(stopped.problem)


def test_unlock_refuses_a_holder_that_still_runs(host: PretendHost, dev: Environment) -> None:
    import os  # noqa: PLC0415
    import socket  # noqa: PLC0415

    lock = Path(dev.base_dir) / ".lock"
    lock.mkdir()
    (lock / "holder.json").write_text(
        f'{{"holder": "me", "host": "{socket.gethostname()}", "pid": {os.getpid()}, '
        '"command": "deploy", "started_at": "now", "token": "t"}'
    )
    with pytest.raises(UsageError, match="still running"):
        unlock(host.context(dev), False)
    assert lock.is_dir()


def reads_notes(version: int) -> DataContract:
    return {"projections": 1, "events": {"NoteCaptured": {"reads": version, "writes": version}}}


def test_rollback_to_a_release_that_cannot_read_the_log_is_refused(
    host: PretendHost, dev: Environment
) -> None:
    host.artifact("0.1.0")
    host.artifact("0.2.0", contract=reads_notes(2))
    host.deploy(dev, "0.1.0")
    host.deploy(dev, "0.2.0")
    host.write_events(dev, ("NoteCaptured", 1), ("NoteCaptured", 2))
    log = host.log(dev)
    with pytest.raises(UsageError) as refused:
        rollback(host.context(dev, Notes()), None)
    assert str(refused.value).startswith(
        "0.1.0 (010010010010) cannot read the event log: it holds NoteCaptured events of schema "
        "version 2 (the first at 2026-12-01T10:00:01Z), and it reads up to version 1"
    )
    assert 'FORCE=1 REASON="…"' in str(refused.value)
    assert host.log(dev) == log, "refused before the lock: not even a record"


def test_a_forced_rollback_needs_a_reason_and_records_it(
    host: PretendHost, dev: Environment
) -> None:
    first = host.artifact("0.1.0")
    host.artifact("0.2.0", contract=reads_notes(2))
    host.deploy(dev, "0.1.0")
    host.deploy(dev, "0.2.0")
    host.write_events(dev, ("NoteCaptured", 2))
    with pytest.raises(UsageError, match="needs a reason"):
        rollback(host.context(dev, Notes(), forced=" "), None)
    done = rollback(host.context(dev, Notes(), forced="v0.2.0 corrupts notes"), None)
    assert done.sha == first
    last = finishes(host, dev)[-1]
    assert (last["action"], last["forced"]) == ("rollback", "v0.2.0 corrupts notes")


def test_a_log_the_target_can_read_rolls_back_as_ever(host: PretendHost, dev: Environment) -> None:
    first = host.artifact("0.1.0", contract=reads_notes(2))
    host.artifact("0.2.0", contract=reads_notes(2))
    host.deploy(dev, "0.1.0")
    host.deploy(dev, "0.2.0")
    host.write_events(dev, ("NoteCaptured", 2))
    assert rollback(host.context(dev, Notes()), None).sha == first


def test_no_automatic_rollback_to_a_release_that_cannot_read_the_log(
    host: PretendHost, dev: Environment
) -> None:
    first = host.artifact("0.1.0")
    broken = host.artifact("0.2.0", contract=reads_notes(2))
    host.system.broken.add(broken)
    host.deploy(dev, "0.1.0")
    host.write_events(dev, ("NoteCaptured", 2))  # e.g. written by a release rolled back by force
    with pytest.raises(
        OperationFailed, match="not rolled back: 0.1.0 .* cannot read the event log"
    ):
        host.deploy(dev, "0.2.0")
    assert host.current(dev) == broken, "left where it is, for the operator to roll forward"
    assert first in host.releases(dev)


def hold_lock(env: Environment) -> Path:
    """The env's lock as a live operation on this machine holds it (this very process)."""
    import os  # noqa: PLC0415
    import socket  # noqa: PLC0415

    lock = Path(env.base_dir) / ".lock"
    lock.mkdir()
    (lock / "holder.json").write_text(
        f'{{"holder": "ops@other", "host": "{socket.gethostname()}", "pid": {os.getpid()}, '
        '"command": "deploy 0.9.9", "started_at": "2026-12-01T10:00:00Z", "token": "theirs"}'
    )
    return lock


class ReleasingNotes(Notes):
    """Notes that let the other operation finish once told it waits for it."""

    def __init__(self, lock: Path) -> None:
        super().__init__()
        self.lock = lock

    def note(self, message: str) -> None:
        super().note(message)
        if "waiting up to" in message:
            import shutil  # noqa: PLC0415

            shutil.rmtree(self.lock)  # the holder finishes while we wait


def test_with_wait_a_deploy_queues_behind_a_held_lock(host: PretendHost, dev: Environment) -> None:
    sha = host.artifact("0.1.0")
    notes = ReleasingNotes(hold_lock(dev))
    clock = FakeClock()
    done = host.deploy(dev, "0.1.0", notes, wait=30, clock=clock)
    assert done.sha == sha and host.current(dev) == sha
    waiting = [line for line in notes.lines if "waiting up to" in line]
    assert len(waiting) == 1, "told once, not on every poll"
    assert waiting[0].startswith("dev is locked by ops@other (pid ")
    assert waiting[0].endswith(
        "`deploy 0.9.9` since 2026-12-01T10:00:00Z); waiting up to 30 s for it"
    )


def test_a_wait_that_runs_out_is_refused_with_the_holder(
    host: PretendHost, dev: Environment
) -> None:
    host.artifact("0.1.0")
    lock = hold_lock(dev)
    clock, notes = FakeClock(), Notes()
    with pytest.raises(LockHeld, match=r"ops@other .*\(still, after waiting 30 s\)"):
        host.deploy(dev, "0.1.0", notes, wait=30, clock=clock)
    assert lock.is_dir() and host.current(dev) is None
    # Asked again every 0.25 s on the operator's clock, the last ask at the deadline.
    assert clock.slept == [0.25] * 120
    assert len([line for line in notes.lines if "waiting up to" in line]) == 1, "told once"
    # A wait that is not a whole number of polls ends on the dot.
    clock = FakeClock(now=1000.0)
    with pytest.raises(LockHeld, match=r"after waiting 1.1 s"):
        host.deploy(dev, "0.1.0", Notes(), wait=1.1, clock=clock)
    assert clock.slept == pytest.approx([0.25] * 4 + [0.1])


def test_status_of_every_env_on_one_screen(host: PretendHost) -> None:
    envs = [host.env("dev"), host.env("staging"), host.env("live", requires="staging")]
    for env in envs[1:]:
        host.set_up(env)
    first, second = host.artifact("0.1.0"), host.artifact("0.2.0")
    host.deploy(envs[1], "0.1.0")
    host.deploy(envs[2], "0.1.0")
    host.deploy(envs[1], "0.2.0")
    rows = {row.env: row for row in read_all(host.context(envs[0]), envs)}
    dev = rows["dev"].status
    assert dev is not None and not dev.healthy and dev.problem == "nothing is deployed"
    assert rows["staging"].status is not None and rows["staging"].status.sha == second
    assert rows["live"].status is not None and rows["live"].status.sha == first
    assert rows["live"].behind == "differs from staging", "no repository here to count commits"
    assert rows["staging"].behind is None, "staging is promoted from nothing"
    host.deploy(envs[2], "0.2.0")
    again = {row.env: row for row in read_all(host.context(envs[0]), envs)}
    assert again["live"].behind == "same as staging"


@pytest.fixture
def gated(host: PretendHost) -> tuple[Environment, Environment]:
    """staging, and live behind the staging gate (no soak: time is not the point here)."""
    staging, live = host.env("staging"), host.env("live", requires="staging", soak=0.0)
    host.set_up(staging)
    host.set_up(live)
    return staging, live


def test_live_refuses_what_staging_never_ran_unless_forced(
    host: PretendHost, gated: tuple[Environment, Environment]
) -> None:
    live = gated[1]
    sha = host.artifact("0.1.0")
    with pytest.raises(
        UsageError,
        match="live takes only what staging verified: 010010010010 "
        "was never deployed to staging successfully",
    ):
        host.deploy(live, "0.1.0")
    assert host.current(live) is None
    done = host.deploy(
        live,
        "0.1.0",
        Notes(),
        forced="hotfix, staging is down",
    )
    assert done.sha == sha
    last = finishes(host, live)[-1]
    assert last["forced"] == "hotfix, staging is down"
    assert last["skipped"] == "010010010010 was never deployed to staging successfully"


def test_promote_moves_what_staging_serves_to_live(
    host: PretendHost, gated: tuple[Environment, Environment]
) -> None:
    staging, live = gated
    sha = host.artifact("0.1.0")
    host.deploy(staging, "0.1.0")
    done = host.promote(staging, live)
    assert (done.outcome, done.sha) == ("succeeded", sha) and host.current(live) == sha
    assert finishes(host, live)[-1]["promoted_from"] == "staging"
    again = host.promote(staging, live)
    assert again.outcome == "noop"


def test_promote_refuses_an_unhealthy_source_or_a_dev_build(
    host: PretendHost, gated: tuple[Environment, Environment]
) -> None:
    staging, live = gated
    with pytest.raises(UsageError, match="staging is not healthy \\(nothing is deployed\\)"):
        host.promote(staging, live)
    host.artifact("0.1.1.dev2", tag=False)
    host.deploy(host.env("staging", allow_dev_builds=True), "0.1.1.dev2")
    with pytest.raises(UsageError, match="staging runs an unpublished dev build"):
        host.promote(staging, live)
    assert host.current(live) is None


@pytest.mark.parametrize(
    ("trouble", "reason"),
    [
        # systemd restarts it a second later (Restart=on-failure): the watch sees it go.
        ("crashing", "during the 0.5 s watch: the unit went activating (exit-code)"),
        ("erroring", "during the 0.5 s watch: it answered 1 request(s) with a server error"),
    ],
)
def test_a_release_that_turns_bad_during_the_watch_is_rolled_back(
    host: PretendHost, trouble: str, reason: str
) -> None:
    env = host.env("staging", watch=0.5)
    host.set_up(env)
    good, bad = host.artifact("0.1.0"), host.artifact("0.2.0")
    host.deploy(env, "0.1.0")
    getattr(host.system, trouble).add(bad)
    with pytest.raises(OperationFailed, match=re.escape(reason)):
        host.deploy(env, "0.2.0")
    assert host.current(env) == good
    last = finishes(host, env)[-1]
    assert (last["sha"], last["outcome"]) == (bad, "rolled_back")
    assert reason in str(last["reason"])


def test_a_release_systemd_restarts_at_once_during_the_watch_is_rolled_back(
    host: PretendHost,
) -> None:
    # Units restarting a crashed service without delay: between two looks the unit is active
    # again, and only its restart count says it crashed.
    deployment = host.workspace / "deployment"
    deployment.unlink()
    shutil.copytree(REPO / "deployment", deployment)
    template = deployment / "systemd" / "helionyx.service.in"
    template.write_text(template.read_text().replace("RestartSec=1", "RestartSec=0"))
    env = host.env("staging", watch=0.5)
    host.set_up(env)
    good, bad = host.artifact("0.1.0"), host.artifact("0.2.0")
    host.deploy(env, "0.1.0")
    host.system.crashing.add(bad)
    with pytest.raises(OperationFailed, match=re.escape("the unit restarted (1 restarts)")):
        host.deploy(env, "0.2.0")
    assert host.current(env) == good


def test_a_release_that_stays_good_through_the_watch_stays(host: PretendHost) -> None:
    env = host.env("staging", watch=0.5)
    host.set_up(env)
    sha = host.artifact("0.1.0")
    assert host.deploy(env, "0.1.0").outcome == "succeeded"
    assert host.current(env) == sha


def test_the_watch_counts_down_to_the_operator_while_it_runs(host: PretendHost) -> None:
    env = host.env("staging", watch=2.2)
    host.set_up(env)
    host.artifact("0.1.0")
    notes = Notes()
    assert host.deploy(env, "0.1.0", notes).outcome == "succeeded"
    # One line a second from the host, before its answer: 0, 1, 2 s of the 2.2 s watch.
    assert [p["step"] for p in notes.progressed] == ["watch"] * 3
    assert [round(p["done"]) for p in notes.progressed] == [0, 1, 2]
    assert {p["total"] for p in notes.progressed} == {2.2}


def test_a_deploy_never_changes_the_hosts_set_up_silently(host: PretendHost) -> None:
    # Set up to listen on every address; deployed from a shell that says nothing about it.
    exposed = host.env("staging", listen_address="0.0.0.0")
    host.set_up(exposed)
    host.artifact("0.1.0")
    sha = host.artifact("0.2.0")
    plain = host.env("staging")
    socket_file = host.system.units_dir / f"{plain.unit}.socket"
    before = socket_file.read_text()
    with pytest.raises(UsageError) as refused:
        host.deploy(plain, "0.1.0")
    assert str(refused.value).startswith(
        "staging on node1 is set up with other settings: listen: 0.0.0.0:8001 -> 127.0.0.1:8001"
    )
    assert "APPLY=1" in str(refused.value)
    assert socket_file.read_text() == before and host.current(plain) is None
    assert host.deploy(exposed, "0.1.0").outcome == "succeeded", "as set up: fine"
    calls = len(host.system.systemctl_calls)
    done = host.deploy(
        plain,
        "0.2.0",
        Notes(),
        apply_units=True,
    )
    assert done.sha == sha
    assert "ListenStream=127.0.0.1:8001" in socket_file.read_text()
    assert ("restart", f"{plain.unit}.socket") in host.system.systemctl_calls[calls:], (
        "the socket restarted to listen where its unit now says"
    )


def test_status_names_a_set_up_that_differs_from_this_checkout(host: PretendHost) -> None:
    exposed = host.env("staging", listen_address="0.0.0.0")
    host.set_up(exposed)
    plain = host.env("staging")
    as_set_up = render_units(host.workspace, exposed)
    assert read_status(host.context(exposed), as_set_up).drift == []
    units = render_units(host.workspace, plain)
    assert read_status(host.context(plain), units).drift == [
        "listen: 0.0.0.0:8001 -> 127.0.0.1:8001"
    ]
    # A host set up before settings were recorded is judged by its socket unit's address.
    (Path(exposed.base_dir) / HOST_SETTINGS).unlink()
    assert read_status(host.context(plain), units).drift == [
        "listen: 0.0.0.0:8001 -> 127.0.0.1:8001"
    ]
    assert read_status(host.context(exposed), as_set_up).drift == []


NOTIFY_TOKEN = "4242:notify-test-token"


def test_a_deploy_and_a_rollback_are_announced_in_the_envs_chat(
    host: PretendHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = host.env("staging", notify="telegram:-100777")
    host.set_up(env)
    first, second = host.artifact("0.1.0"), host.artifact("0.2.0")
    with botapi_serving(NOTIFY_TOKEN) as telegram:
        monkeypatch.setenv("HELIONYX_NOTIFY_BOT_TOKEN", NOTIFY_TOKEN)
        monkeypatch.setenv("TELEGRAM_API_URL", telegram.base_url)
        monkeypatch.setenv("DEPLOY_OPERATOR", "ops@laptop")
        host.deploy(env, "0.1.0")
        host.deploy(env, "0.2.0")
        rollback(host.context(env, Notes()), None)
        sent = telegram.replies_to(-100777)
    assert [re.sub(r", [\d.]+ s$", "", text) for text in sent] == [
        f"helionyx staging: deploy of 0.1.0 ({first[:12]}) succeeded, by ops@laptop",
        f"helionyx staging: deploy of 0.2.0 ({second[:12]}) succeeded, by ops@laptop",
        f"helionyx staging: rollback to 0.1.0 ({first[:12]}) succeeded, by ops@laptop",
    ]


def test_a_failed_notification_is_one_warning_and_the_deploy_stands(
    host: PretendHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = host.env("staging", notify="telegram:-100777")
    host.set_up(env)
    sha = host.artifact("0.1.0")
    notes = Notes()
    with botapi_serving(NOTIFY_TOKEN) as telegram:
        telegram.fail_sending(403, "Forbidden: bot was kicked from the group chat")
        monkeypatch.setenv("HELIONYX_NOTIFY_BOT_TOKEN", NOTIFY_TOKEN)
        monkeypatch.setenv("TELEGRAM_API_URL", telegram.base_url)
        done = host.deploy(env, "0.1.0", notes)
    assert done.sha == sha and host.current(env) == sha
    assert notes.lines[-1] == (
        "the notification to chat -100777 failed "
        "(403 Forbidden: bot was kicked from the group chat)"
    )


def test_without_a_token_nothing_is_sent_and_it_says_so(
    host: PretendHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = host.env("staging", notify="telegram:-100777")
    host.set_up(env)
    host.artifact("0.1.0")
    monkeypatch.delenv("HELIONYX_NOTIFY_BOT_TOKEN", raising=False)
    notes = Notes()
    host.deploy(env, "0.1.0", notes)
    assert notes.lines[-1] == (
        "staging notifies chat -100777, but HELIONYX_NOTIFY_BOT_TOKEN is not set; nothing sent"
    )


def test_a_host_set_up_before_settings_were_recorded_is_judged_by_its_socket(
    host: PretendHost,
) -> None:
    exposed = host.env("staging", listen_address="0.0.0.0")
    host.set_up(exposed)
    (Path(exposed.base_dir) / "host-settings.json").unlink()
    host.artifact("0.1.0")
    with pytest.raises(UsageError, match="listen: 0.0.0.0:8001 -> 127.0.0.1:8001"):
        host.deploy(host.env("staging"), "0.1.0")
    assert host.deploy(exposed, "0.1.0").outcome == "succeeded"
    assert (Path(exposed.base_dir) / "host-settings.json").is_file(), "recorded from now on"


def test_a_watch_cut_short_leaves_the_release_in_place_and_says_so(host: PretendHost) -> None:
    quick, watched = host.env("staging"), host.env("staging", watch=60.0)
    host.set_up(quick)
    host.artifact("0.1.0")
    sha = host.artifact("0.2.0")
    host.deploy(quick, "0.1.0")
    # 30 s into the host's clock (the watch is on by then), a second agent asks to end it,
    # as Ctrl-C does.
    cut: list[object] = []
    host.system.after(30, lambda: cut.append(ask(host.system, CUT_WATCH({}), target_of(watched))))
    assert host.deploy(watched, "0.2.0").outcome == "succeeded"
    assert cut == [{}]
    assert host.current(watched) == sha
    last = finishes(host, watched)[-1]
    assert last["outcome"] == "succeeded"
    assert last["reason"] == "watch cut short by the operator after 30 s"


def test_a_host_set_up_before_socket_activation_has_its_socket_moved_to_systemd(
    host: PretendHost, dev: Environment
) -> None:
    host.artifact("0.1.0")
    host.artifact("0.2.0")
    host.deploy(dev, "0.1.0")
    # As such a host is: the service running and bound to the port itself, no socket listening.
    host.system.systemctl("stop", f"{dev.unit}.socket")
    assert host.system.systemctl("is-active", "--quiet", f"{dev.unit}.service")[0] == 0
    notes = Notes()
    assert host.deploy(dev, "0.2.0", notes).outcome == SUCCEEDED
    assert f"moved the listening socket of {dev.unit} to systemd" in notes.lines
    assert host.system.systemctl("is-active", "--quiet", f"{dev.unit}.socket") == (0, "")
    assert ("enable", "--quiet", f"{dev.unit}.socket") in host.system.systemctl_calls


def test_a_host_without_the_service_user_is_refused_with_nothing_changed(
    host: PretendHost, dev: Environment
) -> None:
    host.artifact("0.1.0")
    host.system.user = False  # removed since the host was set up
    with pytest.raises(HostError, match=re.escape("(missing: user)")) as refused:
        host.deploy(dev, "0.1.0")
    assert "run make setup-host ENV=dev first" in str(refused.value)
    assert host.current(dev) is None
    assert not (Path(dev.base_dir) / "releases").exists() or not host.releases(dev)


def test_an_agent_silent_past_the_operators_wait_is_given_up(
    host: PretendHost, dev: Environment
) -> None:
    sha = host.artifact("0.1.0")
    host.deploy(dev, "0.1.0")
    session = host.remote(dev).start("agent", stdin_first=AGENT_BUNDLE)
    session.receive()
    # A build of 2.5 s on the host's clock tells its progress each second; the operator's wait
    # runs from the last line it read.
    host.system.rebuild_takes = 2.5
    message = {"command": "migrate", "target": target_of(dev), "request": {"sha": sha}}
    lines = [session.ask(json.dumps(message), timeout=1.5)]
    lines += [session.receive(timeout=1.5) for _ in range(2)]
    assert [json.loads(line).get("progress", {}).get("done") for line in lines] == [1, 2, None]
    host.system.rebuild_takes = 0.5
    with pytest.raises(SessionClosed, match=re.escape("no answer within 0.2 s")):
        session.ask(json.dumps(message), timeout=0.2)
